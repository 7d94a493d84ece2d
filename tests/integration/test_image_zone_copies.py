"""Copies between zones: a template DOWNLOADED in zone A is copied to zone B's store, fetched from A's store and
verified at the destination against A's recorded SHA-256 (a mismatch is DOWNLOAD_ERROR naming the check)."""

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from plugins.fsbackup import FsBackupConfig
from plugins.fsbackup.driver import open_driver
from schemas.image import (
    CopyImage,
    DownloadState,
    ImageCopyAccepted,
    ImageCopyFailed,
    ImageDownloaded,
    ImageDownloadFailed,
    ImageFormat,
)
from tests.image_http import image_server
from tests.image_stack import ImageStack, image_stack

pytestmark = pytest.mark.integration
MIB = 1 << 20
ZONE_B = uuid.UUID("00000000-0000-4000-8000-00000000000b")


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[ImageStack]:
    async with image_stack(database_url, amqp_url, namespace, tmp_path / "staging") as opened:
        yield opened


def store_dir(tmp_path: Path, name: str) -> dict[str, object]:
    root = tmp_path / name
    root.mkdir()
    return {"path": str(root)}


async def test_a_template_copied_to_another_zone_is_verified_there(
    stack: ImageStack, tmp_path: Path, database_url: str
) -> None:
    await stack.add_store("fsbackup", store_dir(tmp_path, "zone-a"))
    zone_b_config = store_dir(tmp_path, "zone-b")
    zone_b_store = await stack.add_store("fsbackup", zone_b_config, zone=ZONE_B)
    image = tmp_path / "image.raw"
    image.write_bytes(os.urandom(3 * MIB))
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    async with image_server() as server:
        image_id, registered = await stack.register(
            server.add("image.raw", image), checksum=f"{{SHA-256}}{digest}", fmt=ImageFormat.RAW
        )
    assert isinstance(registered, ImageDownloaded), registered

    copy = await stack.send(CopyImage(image_id=image_id, zone_id=ZONE_B))
    accepted = await stack.outcome(copy, ImageCopyAccepted, ImageCopyFailed)
    assert isinstance(accepted, ImageCopyAccepted), accepted
    assert accepted.store_ids == (zone_b_store,)
    copied = await stack.outcome(copy, ImageDownloaded, ImageDownloadFailed)
    assert isinstance(copied, ImageDownloaded), copied
    assert copied.store_id == zone_b_store
    assert copied.checksum == f"sha256:{digest}"
    driver = open_driver(FsBackupConfig.model_validate(zone_b_config))
    try:
        await driver.get_image(str(image_id), tmp_path / "back.raw")
    finally:
        await driver.close()
    assert (tmp_path / "back.raw").read_bytes() == image.read_bytes()  # a test's quick look
    described = await stack.describe(image_id)
    assert {copy.state for copy in described.copies} == {DownloadState.DOWNLOADED}

    again = await stack.outcome(await stack.send(CopyImage(image_id=image_id, zone_id=ZONE_B)), ImageCopyAccepted)
    assert isinstance(again, ImageCopyAccepted), "copying again to a zone that has it is accepted, and copies nothing"


async def test_a_copy_whose_bytes_differ_from_the_source_record_fails_the_checksum_check(
    stack: ImageStack, tmp_path: Path, database_url: str
) -> None:
    await stack.add_store("fsbackup", store_dir(tmp_path, "zone-a"))
    await stack.add_store("fsbackup", store_dir(tmp_path, "zone-b"), zone=ZONE_B)
    image = tmp_path / "image.raw"
    image.write_bytes(os.urandom(MIB))
    async with image_server() as server:
        image_id, registered = await stack.register(server.add("image.raw", image), fmt=ImageFormat.RAW)
    assert isinstance(registered, ImageDownloaded), registered
    connection = await asyncpg.connect(database_url)
    try:  # the source's record no longer matches its bytes (what a silent corruption in transit would look like)
        await connection.execute(
            "UPDATE image.copies SET checksum = $2 WHERE image_id = $1", image_id, "sha256:" + "0" * 64
        )
    finally:
        await connection.close()
    copy = await stack.send(CopyImage(image_id=image_id, zone_id=ZONE_B))
    failed = await stack.outcome(copy, ImageDownloaded, ImageDownloadFailed)
    assert isinstance(failed, ImageDownloadFailed), failed
    assert "checksum check" in failed.error.message
    assert list((tmp_path / "staging").iterdir()) == []


async def test_copying_to_a_zone_without_a_store_is_refused(stack: ImageStack, tmp_path: Path) -> None:
    await stack.add_store("fsbackup", store_dir(tmp_path, "zone-a"))
    image = tmp_path / "image.raw"
    image.write_bytes(os.urandom(MIB))
    async with image_server() as server:
        image_id, _ = await stack.register(server.add("image.raw", image), fmt=ImageFormat.RAW)
    refused = await stack.outcome(
        await stack.send(CopyImage(image_id=image_id, zone_id=uuid.uuid4())), ImageCopyAccepted, ImageCopyFailed
    )
    assert isinstance(refused, ImageCopyFailed)
    assert refused.error.field == "zone_id"
