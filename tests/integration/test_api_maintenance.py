"""The outbox view, a backup prune and a repository's garbage collection through the API: a dry run lists each
backup's fate and removes nothing, the prune itself removes what no rule keeps, as an operation; the collection is
an operation too, refused to a viewer."""

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


async def test_the_outbox_and_a_backup_prune(stack: Stack) -> None:
    for name in ("p", "repo"):
        (stack.pools_dir / name).mkdir()
    async with stack.client(Role.OPERATOR) as client:
        outbox = await client.get("/api/v1/outbox")
        assert outbox.status_code == 200, outbox.text
        assert isinstance(outbox.json(), list)
        repo = {"name": "repo", "plugin": "fsbackup", "config": {"path": str(stack.pools_dir / "repo")}}
        await succeeded(client, await client.post("/api/v1/backup-repositories", json=repo))
        pool = {"name": "p", "plugin": "qcow2fs", "config": {"path": str(stack.pools_dir / "p")}, "cluster": CLUSTER}
        await succeeded(client, await client.post("/api/v1/pools", json=pool))
        created = await succeeded(
            client, await client.post("/api/v1/volumes", json={"name": "v", "size": "4M", "pool": "p"})
        )
        volume_id = created["result"]["volume_id"]
        taken = [
            (await succeeded(client, await client.post("/api/v1/backups", json={"volume": "v", "repository": "repo"})))[
                "result"
            ]["backup_id"]
            for _ in range(3)
        ]

        plan = {"volume_id": volume_id, "keep": {"last": 1}}
        dry = await client.post("/api/v1/backups/prune", json=plan)
        assert dry.status_code == 200, dry.text
        fates = {row["backup_id"]: row["kept_by"] for row in dry.json()}
        assert fates == {taken[2]: "last", taken[0]: None, taken[1]: None}
        assert len((await client.get("/api/v1/backups")).json()) == 3  # a dry run removes nothing

        done = await succeeded(client, await client.post("/api/v1/backups/prune", json={**plan, "dry_run": False}))
        assert sorted(done["result"]["removed"]) == sorted(taken[:2])
        states = {row["backup_id"]: row["state"] for row in (await client.get("/api/v1/backups?all=true")).json()}
        assert states.get(taken[2]) == "BackedUp"

        no_rule = await client.post("/api/v1/backups/prune", json={**plan, "keep": {}})
        assert no_rule.status_code == 422  # no rule: a prune without one would remove everything

        # The repository's collection (the volume reads as zeros: its backups hold no chunk, none to free).
        collected = await succeeded(client, await client.post("/api/v1/backup-repositories/repo/gc"))
        assert collected["kind"] == "backup_repository.collect_garbage"
        assert collected["result"]["freed_chunks"] == 0
        assert collected["result"]["deferred"] is False
        unknown = await client.post("/api/v1/backup-repositories/nope/gc")
        assert unknown.status_code == 404
        assert unknown.json()["error"]["field"] == "repository"
    async with stack.client(Role.VIEWER) as viewer:
        assert (await viewer.post("/api/v1/backup-repositories/repo/gc")).status_code == 403
