"""The image service killed (SIGKILL) in the middle of a download, as a process: the download is not left in
progress. Another image daemon takes it once the dead one's lease ran out, resumes the staging file with a `Range`
request, checks it and stores it: DOWNLOADED, with the bytes of the original and nothing left in staging."""

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from bus.rabbit import RabbitTransport
from bus.settings import BusSettings
from plugins.fsbackup import FsBackupConfig
from plugins.fsbackup.driver import open_driver
from schemas.image import (
    AddImageStore,
    ImageDownloaded,
    ImageDownloadFailed,
    ImageDownloadProgressed,
    ImageFormat,
    ImageKind,
    ImageStoreAdded,
    ImageStoreAddFailed,
    RegisterImage,
)
from services.cli.sending import Client
from tests.e2e.daemon_processes import DaemonProcess, daemon_env, remove_namespace
from tests.image_http import Behaviour, image_server

pytestmark = pytest.mark.e2e
MIB = 1 << 20
ZONE = uuid.UUID("00000000-0000-4000-8000-0000000000c1")


@pytest.fixture
async def env(database_url: str, amqp_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    yield daemon_env(
        database_url,
        amqp_url,
        namespace,
        STRATA_IMAGE_STAGING_DIR=str(tmp_path / "staging"),
        STRATA_IMAGE_LEASE_SECONDS="2",
    )
    await remove_namespace(amqp_url, namespace)


async def copy_state(database_url: str, image_id: uuid.UUID) -> str:
    connection = await asyncpg.connect(database_url)
    try:
        return str(await connection.fetchval("SELECT state FROM image.copies WHERE image_id = $1", image_id))
    finally:
        await connection.close()


async def test_a_download_cut_by_a_killed_service_is_resumed_by_the_next(
    env: dict[str, str], amqp_url: str, namespace: str, database_url: str, tmp_path: Path
) -> None:
    image = tmp_path / "image.raw"
    image.write_bytes(os.urandom(16 * MIB))
    store = tmp_path / "secondary"
    store.mkdir()
    first = await DaemonProcess.start(env, "run", "image")
    second: DaemonProcess | None = None
    transport = RabbitTransport(BusSettings(amqp_url=amqp_url, namespace=namespace), purpose="image-crash-test")
    try:
        async with image_server() as server, Client(transport) as client:
            await client.send(
                AddImageStore(
                    store_id=uuid.uuid4(), name="s", zone_id=ZONE, plugin="fsbackup", config={"path": str(store)}
                ),
                (ImageStoreAdded,),
                (ImageStoreAddFailed,),
                timeout=30.0,
            )
            image_id = uuid.uuid4()
            register = await client.publish(
                RegisterImage(
                    image_id=image_id,
                    name="cut",
                    kind=ImageKind.TEMPLATE,
                    format=ImageFormat.RAW,
                    zone_id=ZONE,
                    url=server.add("cut.raw", image, Behaviour.INTERRUPTED),
                    checksum="{SHA-256}" + hashlib.sha256(image.read_bytes()).hexdigest(),
                )
            )
            await client.watch.wait_for(
                register.correlation_id,
                (ImageDownloadProgressed,),
                timeout=60.0,
                where=lambda event: getattr(event, "done_bytes", 0) >= 8 * MIB,
            )
            await first.kill()
            assert await copy_state(database_url, image_id) == "DOWNLOAD_IN_PROGRESS"

            second = await DaemonProcess.start(env, "run", "image")
            outcome = await client.outcome(register, (ImageDownloaded,), (ImageDownloadFailed,), timeout=60.0)
            assert isinstance(outcome, ImageDownloaded)
            resumed = [asked for path, asked in server.requests if path == "cut.raw" and asked]
            assert resumed, f"the second service did not resume: {server.requests}"
            assert int(resumed[0].removeprefix("bytes=").rstrip("-")) >= 8 * MIB
        assert await copy_state(database_url, image_id) == "DOWNLOADED"
        driver = open_driver(FsBackupConfig(path=str(store)))
        try:
            await driver.get_image(str(image_id), tmp_path / "back.raw")
        finally:
            await driver.close()
        assert (tmp_path / "back.raw").read_bytes() == image.read_bytes()  # a test's quick look
        assert list((tmp_path / "staging").iterdir()) == []
    finally:
        await first.kill()
        if second is not None:
            assert await second.terminate() == 0, second.show_log()
