"""The s3 plugin through the SDK's protocols, on a real SeaweedFS (the same tests as fsbackup, plus its config)."""

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plugins.chunked.driver import ChunkedDriver
from plugins.chunked.s3 import S3BlobStore
from plugins.registry import load_plugins, validate_config
from plugins.sdk.errors import DeadlineExceeded, InvalidArgument, NotFound
from plugins.sdk.types import ImageKind
from tests.integration.test_plugins_fsbackup_plugin import CHUNK, ChunkedPluginContract, open_plugin
from tests.seaweed import SeaweedS3, remove_bucket, shared_seaweed
from tests.stall_proxy import StallingProxy

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def seaweed() -> SeaweedS3:
    return shared_seaweed()


class TestS3Plugin(ChunkedPluginContract):
    @pytest.fixture
    async def driver(self, seaweed: SeaweedS3) -> AsyncIterator[ChunkedDriver]:
        bucket = f"t-{uuid.uuid4().hex[:16]}"
        config = {
            "endpoint": seaweed.endpoint_url,
            "region": seaweed.region,
            "bucket": bucket,
            "access_key": seaweed.access_key,
            "secret_key": seaweed.secret_key,
            "prefix": "zone1/backups",
            "chunk_size_kib": CHUNK // 1024,
        }
        driver = open_plugin("s3", config)
        assert isinstance(driver.store, S3BlobStore)
        await driver.store.ensure_bucket()
        yield driver
        await driver.close()
        remove_bucket(seaweed, bucket)


def test_a_bad_config_names_the_field_and_never_echoes_the_secret() -> None:
    loaded = load_plugins().get("s3")
    good = {"endpoint": "http://127.0.0.1:8333", "bucket": "backups", "access_key": "a", "secret_key": "s3cr3t-value"}
    config = validate_config(loaded, good)
    assert "s3cr3t-value" not in repr(config)
    for field, value in (("endpoint", "ftp://nope"), ("bucket", "Not_A_Bucket")):
        with pytest.raises(InvalidArgument, match="plugin 's3'") as error:
            validate_config(loaded, good | {field: value})
        assert error.value.field == field
    with pytest.raises(InvalidArgument) as missing:
        validate_config(loaded, {key: value for key, value in good.items() if key != "secret_key"})
    assert missing.value.field == "secret_key"
    assert "s3cr3t-value" not in str(missing.value)


async def test_create_bucket_makes_a_missing_bucket_on_first_use(seaweed: SeaweedS3, tmp_path: Path) -> None:
    bucket = f"t-{uuid.uuid4().hex[:16]}"
    config = {
        "endpoint": seaweed.endpoint_url,
        "bucket": bucket,
        "access_key": seaweed.access_key,
        "secret_key": seaweed.secret_key,
        "create_bucket": True,
    }
    driver = open_plugin("s3", config)
    try:
        volume = tmp_path / "vol.raw"
        volume.write_bytes(b"x" * 5000)
        await driver.backup("b1", "vol-1", volume)
        assert [ref.backup_id for ref in await driver.list_backups()] == ["b1"]
        await driver.delete_backup("b1")
    finally:
        await driver.close()
        remove_bucket(seaweed, bucket)


async def test_a_stalled_endpoint_ends_each_call_at_its_deadline_and_leaves_no_image(
    seaweed: SeaweedS3, tmp_path: Path
) -> None:
    bucket = f"t-{uuid.uuid4().hex[:16]}"
    source = tmp_path / "image.raw"
    source.write_bytes(os.urandom(256 * 1024))
    async with StallingProxy(seaweed.endpoint_url) as proxy:
        config = {
            "endpoint": proxy.url,
            "region": seaweed.region,
            "bucket": bucket,
            "access_key": seaweed.access_key,
            "secret_key": seaweed.secret_key,
            "create_bucket": True,
            "chunk_size_kib": 64,
            "request_timeout_seconds": 1.0,
        }
        driver = open_plugin("s3", config)
        try:
            await driver.put_image("before", ImageKind.TEMPLATE, source)
            proxy.stalled = True
            with pytest.raises(DeadlineExceeded, match="deadline"):
                await driver.put_image("stalled", ImageKind.TEMPLATE, source)
            with pytest.raises(DeadlineExceeded):
                await driver.get_image("before", tmp_path / "before.raw")
            proxy.stalled = False
            # Once the endpoint answers again the store works, and the stalled upload left no image behind.
            await driver.get_image("before", tmp_path / "before.raw")
            assert (tmp_path / "before.raw").read_bytes() == source.read_bytes()
            with pytest.raises(NotFound):
                await driver.get_image("stalled", tmp_path / "stalled.raw")
        finally:
            await driver.close()
    remove_bucket(seaweed, bucket)
