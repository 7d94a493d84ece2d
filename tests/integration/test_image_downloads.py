"""Registering templates from a real HTTP server started by the test: a qcow2 made by qemu-img reaches DOWNLOADED
in an fsbackup store and in an s3 store (SeaweedFS); a wrong checksum, a truncated body, a stalled server, a qcow2
with a backing file and a qcow2 that describes a disk past the limit reach DOWNLOAD_ERROR with a reason naming the
check, and leave nothing in the store or the staging directory."""

import hashlib
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from uuid import UUID

import pytest

from plugins.fsbackup import FsBackupConfig
from plugins.fsbackup.driver import open_driver
from schemas.image import DownloadState, ImageDownloaded, ImageDownloadFailed
from services.image.context import DownloadLimits
from tests.image_http import Behaviour, ImageServer, image_server
from tests.image_stack import ImageStack, image_stack
from tests.integration.plugins_qcow2fs_support import require_qemu_tools
from tests.seaweed import SeaweedS3, run_seaweed

pytestmark = pytest.mark.integration
MIB = 1 << 20


@pytest.fixture(scope="module")
def seaweed() -> Iterator[SeaweedS3]:
    with run_seaweed() as server:
        yield server


def make_qcow2(directory: Path, name: str, *, size: str = "16M", backing: Path | None = None) -> Path:
    """A qcow2 made by qemu-img from random data (or an empty one on a backing file)."""
    require_qemu_tools()
    target = directory / name
    if backing is not None:
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(backing), "-F", "qcow2", str(target)], check=True
        )
        return target
    raw = directory / f"{name}.raw"
    raw.write_bytes(os.urandom(4 * MIB) + bytes(4 * MIB) + os.urandom(MIB))
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(target)], check=True)
    if size != "9M":
        subprocess.run(["qemu-img", "resize", "-q", "-f", "qcow2", str(target), size], check=True)
    raw.unlink()
    return target


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
async def server() -> AsyncIterator[ImageServer]:
    async with image_server() as running:
        yield running


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[ImageStack]:
    limits = DownloadLimits(stall_seconds=1.0, attempts=2, max_virtual_bytes=1 << 30)
    async with image_stack(database_url, amqp_url, namespace, tmp_path / "staging", limits) as opened:
        yield opened


def fsbackup_store(tmp_path: Path) -> dict[str, object]:
    root = tmp_path / "image-store"
    root.mkdir()
    return {"path": str(root)}


async def stored_ids(config: dict[str, object]) -> set[str]:
    driver = open_driver(FsBackupConfig.model_validate(config))
    try:
        return {image.image_id for image in await driver.list_images()}
    finally:
        await driver.close()


async def test_a_good_qcow2_reaches_downloaded_and_the_bad_ones_say_which_check_failed(
    stack: ImageStack, server: ImageServer, tmp_path: Path
) -> None:
    config = fsbackup_store(tmp_path)
    await stack.add_store("fsbackup", config)
    good = make_qcow2(tmp_path, "good.qcow2")
    image_id, outcome = await stack.register(server.add("good.qcow2", good), checksum=f"{{SHA-256}}{sha256_of(good)}")
    assert isinstance(outcome, ImageDownloaded), outcome
    assert outcome.checksum == f"sha256:{sha256_of(good)}"
    assert outcome.virtual_size_bytes == 16 * MIB
    described = await stack.describe(image_id)
    assert [copy.state for copy in described.copies] == [DownloadState.DOWNLOADED]
    assert str(image_id) in await stored_ids(config)

    backing = make_qcow2(tmp_path, "with-backing.qcow2", backing=good)
    huge = make_qcow2(tmp_path, "huge.qcow2", size="4G")
    cut = tmp_path / "cut.qcow2"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    bad = {
        "checksum check": (server.add("wrong-sum", good), "{SHA-512}" + "0" * 128),
        "truncated": (server.add("truncated", good, Behaviour.TRUNCATE), None),
        "stalled": (server.add("stalled", good, Behaviour.STALL), None),
        "backing file": (server.add("backing", backing), None),
        "more than the limit": (server.add("huge", huge), None),
        "format check": (server.add("cut", cut), None),
        "404": (server.url("missing"), None),
    }
    failed: list[UUID] = []
    for reason, (url, checksum) in bad.items():
        bad_id, outcome = await stack.register(url, checksum=checksum)
        assert isinstance(outcome, ImageDownloadFailed), (reason, outcome)
        assert reason in outcome.error.message, (reason, outcome.error.message)
        described = await stack.describe(bad_id)
        assert [copy.state for copy in described.copies] == [DownloadState.DOWNLOAD_ERROR]
        assert reason in (described.copies[0].error or "")
        failed.append(bad_id)
    assert not {str(bad_id) for bad_id in failed} & await stored_ids(config), "a failed download left an object"
    assert list((tmp_path / "staging").iterdir()) == [], "a failed download left a staging file"


async def test_a_wrong_md5_is_refused_and_a_right_one_accepted(
    stack: ImageStack, server: ImageServer, tmp_path: Path
) -> None:
    await stack.add_store("fsbackup", fsbackup_store(tmp_path))
    image = make_qcow2(tmp_path, "image.qcow2")
    url = server.add("image.qcow2", image)
    _, refused = await stack.register(url, checksum="0" * 32)
    assert isinstance(refused, ImageDownloadFailed)
    assert "checksum check" in refused.error.message
    assert "md5" in refused.error.message
    _, accepted = await stack.register(url, checksum=hashlib.md5(image.read_bytes()).hexdigest())
    assert isinstance(accepted, ImageDownloaded), accepted


async def test_a_good_qcow2_reaches_downloaded_on_s3(
    stack: ImageStack, server: ImageServer, seaweed: SeaweedS3, tmp_path: Path
) -> None:
    config = {
        "endpoint": seaweed.endpoint_url,
        "region": seaweed.region,
        "bucket": "images",
        "create_bucket": True,
        "prefix": f"test-{tmp_path.name}",
        "access_key": seaweed.access_key,
        "secret_key": seaweed.secret_key,
    }
    await stack.add_store("s3", config)
    good = make_qcow2(tmp_path, "good.qcow2")
    _image_id, outcome = await stack.register(server.add("good.qcow2", good), checksum=f"{{SHA-256}}{sha256_of(good)}")
    assert isinstance(outcome, ImageDownloaded), outcome
    _, refused = await stack.register(server.add("wrong", good), checksum="{SHA-256}" + "1" * 64)
    assert isinstance(refused, ImageDownloadFailed)
    assert "checksum check" in refused.error.message
    journal = str([event.payload for event in stack.events])
    assert seaweed.secret_key not in journal
