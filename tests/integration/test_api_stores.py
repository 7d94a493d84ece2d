"""Stores and settings through the API against the whole system: an image store and a backup repository added
(a bad config refused on its field first), a volume backed up, listed, verified, restored to a new volume and
deleted, the repository removed, and a pool's tags and thresholds changed."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.api.keys import Role
from tests.browser.api_stack import CLUSTER, Stack, api_stack, succeeded

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async with api_stack(database_url, amqp_url, namespace, tmp_path) as running:
        yield running


async def test_stores_backups_and_pool_settings_through_the_api(stack: Stack) -> None:
    for name in ("p", "store", "repo"):
        (stack.pools_dir / name).mkdir()
    async with stack.client(Role.OPERATOR) as client:
        bad = {"name": "s", "plugin": "fsbackup", "config": {"path": "relative"}}
        refused = await client.post("/api/v1/image-stores", json=bad)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["field"] == "path"
        wrong_role = await client.post("/api/v1/backup-repositories", json={**bad, "plugin": "qcow2fs"})
        assert wrong_role.json()["error"]["field"] == "plugin"
        store = {"name": "store", "plugin": "fsbackup", "config": {"path": str(stack.pools_dir / "store")}}
        await succeeded(client, await client.post("/api/v1/image-stores", json=store))
        assert [each["name"] for each in (await client.get("/api/v1/image-stores")).json()] == ["store"]
        repo = {"name": "repo", "plugin": "fsbackup", "config": {"path": str(stack.pools_dir / "repo")}}
        await succeeded(client, await client.post("/api/v1/backup-repositories", json=repo))
        [listed] = (await client.get("/api/v1/backup-repositories")).json()
        assert listed["config"]["path"] == str(stack.pools_dir / "repo")  # an object, as a pool's config is
        pool = {"name": "p", "plugin": "qcow2fs", "config": {"path": str(stack.pools_dir / "p")}, "cluster": CLUSTER}
        await succeeded(client, await client.post("/api/v1/pools", json=pool))
        await succeeded(client, await client.post("/api/v1/volumes", json={"name": "v", "size": "8M", "pool": "p"}))
        backup = await succeeded(
            client, await client.post("/api/v1/backups", json={"volume": "v", "repository": "repo"})
        )
        backup_id = backup["result"]["backup_id"]
        assert [each["backup_id"] for each in (await client.get("/api/v1/backups")).json()] == [backup_id]
        await succeeded(client, await client.post(f"/api/v1/backups/{backup_id}/verify"))
        schedule = {"volume": "v", "repository": "repo", "interval": "DAILY", "schedule": "30:02", "max_backups": 3}
        scheduled = await succeeded(client, await client.post("/api/v1/backup-schedules", json=schedule))
        listed = (await client.get("/api/v1/backup-schedules", params={"volume": "v"})).json()
        assert [(row["schedule_id"], row["max_backups"]) for row in listed] == [(scheduled["result"]["schedule_id"], 3)]
        await succeeded(client, await client.delete(f"/api/v1/backup-schedules/{scheduled['result']['schedule_id']}"))
        ruled = {"volume": "v", "repository": "repo", "interval": "HOURLY", "schedule": "15", "keep": {"last": 3}}
        by_rules = (await succeeded(client, await client.post("/api/v1/backup-schedules", json=ruled)))["result"]
        assert (by_rules["max_backups"], by_rules["keep"]["last"]) == (1, 3)  # the rules alone decide, not 7 and 3
        await succeeded(client, await client.delete(f"/api/v1/backup-schedules/{by_rules['schedule_id']}"))
        restore = {"name": "v-restored", "pool": "p"}
        await succeeded(client, await client.post(f"/api/v1/backups/{backup_id}/restore", json=restore))
        assert (await client.get("/api/v1/volumes/v-restored")).json()["state"] == "Ready"
        await succeeded(client, await client.delete(f"/api/v1/backups/{backup_id}"))
        await succeeded(client, await client.delete("/api/v1/backup-repositories/repo"))
        assert (await client.get("/api/v1/backup-repositories")).json() == []
        thresholds = {"capacity_disable_threshold": 0.7, "allocated_capacity_disable_threshold": 0.8}
        update = {"tags": ["fast"], "thresholds": thresholds}
        await succeeded(client, await client.patch("/api/v1/pools/p", json=update))
        changed = (await client.get("/api/v1/pools/p")).json()
        assert changed["tags"] == ["fast"]
        assert changed["thresholds"]["capacity_disable_threshold"] == 0.7
