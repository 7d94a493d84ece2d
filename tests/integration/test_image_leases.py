"""A download's lease is the worker's while the worker lives, however long a step takes without new bytes: a server
that pauses longer than the lease (but less than the stall limit), checks of a large file, a slow store's put. The
copy is not taken again meanwhile (a second worker would write the same staging file while the first reads it:
"the source shrank while it was read", or two puts of one image)."""

import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from schemas.image import ImageFormat, ImageKind, RegisterImage
from services.image.context import DownloadLimits
from tests.helpers import assert_eventually
from tests.image_http import Behaviour, image_server
from tests.image_stack import ZONE, ImageStack, image_stack

pytestmark = pytest.mark.integration
MIB = 1 << 20
LEASE = 1.0


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[ImageStack]:
    limits = DownloadLimits(stall_seconds=60.0, attempts=3)  # the pause below is no stall
    async with image_stack(database_url, amqp_url, namespace, tmp_path / "staging", limits) as opened:
        opened.deps.lease_seconds = LEASE
        yield opened


async def test_a_download_paused_longer_than_its_lease_is_not_taken_again(
    stack: ImageStack, tmp_path: Path, database_url: str
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    await stack.add_store("fsbackup", {"path": str(store)})
    image = tmp_path / "image.raw"
    image.write_bytes(os.urandom(MIB))
    async with image_server() as server:
        url = server.add("paused.raw", image, Behaviour.STALL)  # 64 KiB, then nothing until the server stops
        command = RegisterImage(
            image_id=uuid.uuid4(), name="paused", kind=ImageKind.TEMPLATE, format=ImageFormat.RAW, zone_id=ZONE, url=url
        )
        await stack.send(command)
        connection = await asyncpg.connect(database_url)
        try:
            claimed: datetime = await assert_eventually(
                lambda: connection.fetchval("SELECT lease_until FROM image.copies WHERE done_bytes > 0"),
                timeout=30.0,
                what="the download under way",
            )

            async def lease_held_long_or_taken_again() -> bool:
                row = await connection.fetchrow("SELECT lease_until, attempts FROM image.copies")
                assert row is not None
                return bool(row["lease_until"] > claimed + timedelta(seconds=4 * LEASE) or row["attempts"] > 1)

            await assert_eventually(
                lease_held_long_or_taken_again, timeout=30.0, what="the lease kept past four of its lengths"
            )
            attempts = await connection.fetchval("SELECT attempts FROM image.copies")
        finally:
            await connection.close()
        assert attempts == 1, "the copy was taken again while its worker was still at it"
        assert [path for path, _ in server.requests if path == "paused.raw"] == ["paused.raw"]
