"""The s3 plugin through the SDK's protocols, on a real SeaweedFS (the same tests as fsbackup, plus its config)."""

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plugins.chunked.driver import ChunkedDriver
from plugins.chunked.s3 import S3BlobStore
from plugins.registry import load_plugins, validate_config
from plugins.sdk.errors import InvalidArgument
from tests.integration.test_plugins_fsbackup_plugin import CHUNK, ChunkedPluginContract, open_plugin
from tests.seaweed import SeaweedS3, remove_bucket, shared_seaweed

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
