"""The S3 blob store and the chunked format on a real SeaweedFS: the store contract, backup and restore, and
errors translated without leaking credentials."""

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plugins.chunked.codec import chunk_key
from plugins.chunked.errors import ChunkCorrupted
from plugins.chunked.ports import BlobStore
from plugins.chunked.repository import ChunkedRepository
from plugins.chunked.s3 import S3BlobStore
from plugins.chunked.settings import ChunkedSettings
from schemas.errors import FailedPrecondition, Transient
from tests.seaweed import SeaweedS3, remove_bucket, shared_seaweed
from tests.unit.test_chunked_store_contract import BlobStoreContract

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def seaweed() -> SeaweedS3:
    return shared_seaweed()


def _store(
    server: SeaweedS3, bucket: str, *, secret_key: str | None = None, prefix: str = "strata/backups"
) -> S3BlobStore:
    return S3BlobStore(
        endpoint_url=server.endpoint_url,
        region=server.region,
        bucket=bucket,
        access_key=server.access_key,
        secret_key=secret_key or server.secret_key,
        prefix=prefix,
    )


@pytest.fixture
async def s3_store(seaweed: SeaweedS3) -> AsyncIterator[S3BlobStore]:
    """A bucket of this test's own, emptied and removed afterwards."""
    bucket = f"t-{uuid.uuid4().hex[:16]}"
    store = _store(seaweed, bucket)
    await store.ensure_bucket()
    yield store
    await store.close()
    remove_bucket(seaweed, bucket)


class TestS3BlobStore(BlobStoreContract):
    @pytest.fixture
    def store(self, s3_store: S3BlobStore) -> BlobStore:
        return s3_store


async def test_keys_live_under_the_prefix(s3_store: S3BlobStore, seaweed: SeaweedS3) -> None:
    await s3_store.put("chunks/abc/abcd", b"x")
    unprefixed = _store(seaweed, s3_store.bucket, prefix="")
    try:
        assert [info.key async for info in unprefixed.list("")] == ["strata/backups/chunks/abc/abcd"]
    finally:
        await unprefixed.close()


async def test_a_backup_restores_from_s3_and_a_corrupted_chunk_is_caught(s3_store: S3BlobStore, tmp_path: Path) -> None:
    repository = ChunkedRepository(s3_store, ChunkedSettings(chunk_size=64 * 1024))
    volume = tmp_path / "vol.raw"
    volume.write_bytes(os.urandom(5 * 64 * 1024) + bytes(3 * 64 * 1024) + b"tail")
    result = await repository.backup(backup_id="b1", volume_id="vol-1", source=volume)
    assert result.holes == 3
    target = tmp_path / "restored.raw"
    await repository.restore("b1", target)
    assert target.read_bytes() == volume.read_bytes()

    victim = chunk_key(result.manifest.chunks[1] or "")
    stored = bytearray(await s3_store.get(victim))
    stored[100] ^= 1
    await s3_store.put(victim, bytes(stored))
    with pytest.raises(ChunkCorrupted):
        await repository.restore("b1", tmp_path / "again.raw")

    _, swept = await repository.delete("b1")
    assert swept.freed_chunks == 6
    assert [info async for info in s3_store.list("")] == []


async def test_wrong_credentials_and_missing_bucket_are_clear_errors_without_the_secret(seaweed: SeaweedS3) -> None:
    wrong = _store(seaweed, "t-anything", secret_key="not-the-secret-" + "x" * 20)
    try:
        with pytest.raises(FailedPrecondition, match="access denied") as denied:
            await wrong.put("chunks/abc/abcd", b"x")
        assert "not-the-secret" not in str(denied.value)
        assert seaweed.secret_key not in str(denied.value)
    finally:
        await wrong.close()
    missing = _store(seaweed, f"t-missing-{uuid.uuid4().hex[:8]}")
    try:
        with pytest.raises(FailedPrecondition, match="bucket does not exist"):
            await missing.put("chunks/abc/abcd", b"x")
    finally:
        await missing.close()


async def test_an_unreachable_endpoint_is_transient() -> None:
    unreachable = S3BlobStore(
        endpoint_url="http://127.0.0.1:9",
        region="us-east-1",
        bucket="b",
        access_key="a",
        secret_key="s",
        max_attempts=1,
    )
    try:
        with pytest.raises(Transient, match="cannot reach"):
            await unreachable.get("chunks/abc/abcd")
    finally:
        await unreachable.close()
