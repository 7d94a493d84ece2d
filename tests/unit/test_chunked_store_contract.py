"""The `BlobStore` contract, written once and inherited by a test class per adapter (memory here; the directory and
S3 adapters in tests/integration)."""

import pytest

from plugins.chunked.memory import MemoryBlobStore
from plugins.chunked.ports import BlobStore
from schemas.errors import NotFound


class BlobStoreContract:
    """Every adapter must pass these; a subclass provides the `store` fixture."""

    async def test_put_then_get_returns_the_bytes_and_a_second_put_replaces_them(self, store: BlobStore) -> None:
        await store.put("chunks/abc/abcdef", b"first")
        assert await store.get("chunks/abc/abcdef") == b"first"
        await store.put("chunks/abc/abcdef", b"second, longer")
        assert await store.get("chunks/abc/abcdef") == b"second, longer"

    async def test_a_missing_key_is_not_found_and_does_not_exist(self, store: BlobStore) -> None:
        with pytest.raises(NotFound):
            await store.get("chunks/nope/nothing")
        assert not await store.exists("chunks/nope/nothing")

    async def test_delete_removes_and_is_idempotent(self, store: BlobStore) -> None:
        await store.put("backups/b1.manifest.json.gz", b"m")
        assert await store.exists("backups/b1.manifest.json.gz")
        await store.delete("backups/b1.manifest.json.gz")
        await store.delete("backups/b1.manifest.json.gz")
        assert not await store.exists("backups/b1.manifest.json.gz")

    async def test_list_yields_the_keys_under_a_prefix_with_their_sizes(self, store: BlobStore) -> None:
        await store.put("chunks/aaa/aaa1", b"1")
        await store.put("chunks/bbb/bbb22", b"22")
        await store.put("backups/x.manifest.json.gz", b"333")
        listed = {info.key: info.size async for info in store.list("chunks/")}
        assert listed == {"chunks/aaa/aaa1": 1, "chunks/bbb/bbb22": 2}
        assert [info.key async for info in store.list("backups/x")] == ["backups/x.manifest.json.gz"]
        assert [info async for info in store.list("locks/")] == []

    async def test_an_empty_object_round_trips(self, store: BlobStore) -> None:
        await store.put("locks/backup/b1", b"")
        assert await store.get("locks/backup/b1") == b""


@pytest.mark.unit
class TestMemoryBlobStore(BlobStoreContract):
    @pytest.fixture
    def store(self) -> BlobStore:
        return MemoryBlobStore()
