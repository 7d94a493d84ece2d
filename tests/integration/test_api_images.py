"""Templates through the API beyond registering: one made from a volume, copied to another zone's store, exported to
a URL taking a PUT (checked against its SHA-256, the URL in no answer); a migration asked for through the store."""

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.api.keys import Role
from services.cli.file_receiver import receive_file
from tests.browser.api_stack import CLUSTER, Stack, api_stack, succeeded

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async with api_stack(database_url, amqp_url, namespace, tmp_path) as running:
        yield running


async def test_a_template_from_a_volume_copied_exported_and_a_staged_migration(stack: Stack, tmp_path: Path) -> None:
    for name in ("p", "q", "store", "store-b"):
        (stack.pools_dir / name).mkdir()
    async with stack.client(Role.OPERATOR) as client:
        for name, zone in (("store", "default"), ("store-b", "zone-b")):
            store = {"name": name, "plugin": "fsbackup", "zone": zone, "config": {"path": str(stack.pools_dir / name)}}
            await succeeded(client, await client.post("/api/v1/image-stores", json=store))
        for name in ("p", "q"):
            pool = {"name": name, "plugin": "qcow2fs", "config": {"path": str(stack.pools_dir / name)}}
            await succeeded(client, await client.post("/api/v1/pools", json={**pool, "cluster": CLUSTER}))
        await succeeded(client, await client.post("/api/v1/volumes", json={"name": "v", "size": "4M", "pool": "p"}))

        made = await succeeded(
            client, await client.post("/api/v1/templates/from-volume", json={"name": "t", "volume": "v"})
        )
        checksum = made["result"]["checksum"]
        copied = await succeeded(client, await client.post("/api/v1/templates/t/copy", json={"zone": "zone-b"}))
        assert len(copied["result"]["store_ids"]) == 1

        target = tmp_path / "t.qcow2"
        async with receive_file(target) as received:
            exported = await succeeded(
                client, await client.post("/api/v1/templates/t/export", json={"url": received.url})
            )
            token = received.url.rsplit("/", 2)[1]
        assert exported["result"]["checksum"] == checksum == f"sha256:{received.sha256}"
        assert hashlib.sha256(target.read_bytes()).hexdigest() == received.sha256
        operation_text = (await client.get(f"/api/v1/operations/{exported['operation_id']}")).text
        assert token not in operation_text  # the URL's token is in no answer

        moved = await succeeded(
            client, await client.post("/api/v1/volumes/v/migrate", json={"pool": "q", "staged": True})
        )
        assert moved["result"]["method"] == "staged"
