"""What the image service's worker does with a download after a pause or a death, on the real servers:

- a download's lease is the worker's while the worker lives, however long a step takes without new bytes (a server
  that pauses longer than the lease but less than the stall limit, checks of a large file, a slow store's put): the
  copy is not taken again meanwhile (a second worker would write the staging file the first reads: "the source
  shrank while it was read", or two puts of one image); and a worker whose copy another took all the same (it lost
  the database for longer than its lease) stops, leaving the copy and its lease to the other;
- a download whose staging file is already whole (its worker died after fetching it, in the checks or the store's
  put) is not fetched again: the server answers the resuming `Range` with 416 and the size the file already has, as
  nginx and Apache do, and the next worker checks and stores what it holds, in the same attempt.
"""

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from structlog.testing import capture_logs

from schemas.image import DownloadState, ImageDownloaded, ImageDownloadFailed, ImageFormat, ImageKind, RegisterImage
from services.image import repository as repo
from services.image.context import DownloadLimits
from tests.helpers import assert_eventually
from tests.image_http import Behaviour, image_server
from tests.image_stack import ZONE, ImageStack, image_stack

pytestmark = pytest.mark.integration
MIB = 1 << 20
LEASE = 1.0


@asynccontextmanager
async def paused_download(stack: ImageStack, tmp_path: Path, database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A registration whose server sends 64 KiB and then nothing (for less than the stall limit) with a lease of
    `LEASE`; a connection to the test's database once the download is under way."""
    stack.deps.lease_seconds = LEASE
    store = tmp_path / "store"
    store.mkdir()
    await stack.add_store("fsbackup", {"path": str(store)})
    image = tmp_path / "image.raw"
    image.write_bytes(os.urandom(MIB))
    async with image_server() as server:
        url = server.add("paused.raw", image, Behaviour.STALL)
        command = RegisterImage(
            image_id=uuid.uuid4(), name="paused", kind=ImageKind.TEMPLATE, format=ImageFormat.RAW, zone_id=ZONE, url=url
        )
        await stack.send(command)
        connection = await asyncpg.connect(database_url)
        try:
            await assert_eventually(
                lambda: connection.fetchval("SELECT done_bytes > 0 FROM image.copies"),
                timeout=30.0,
                what="the download under way",
            )
            yield connection
        finally:
            await connection.close()
        assert [path for path, _ in server.requests if path == "paused.raw"] == ["paused.raw"], "fetched twice"


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[ImageStack]:
    limits = DownloadLimits(stall_seconds=60.0, attempts=3)  # the pause below is no stall
    async with image_stack(database_url, amqp_url, namespace, tmp_path / "staging", limits) as opened:
        yield opened


async def test_a_download_paused_longer_than_its_lease_is_not_taken_again(
    stack: ImageStack, tmp_path: Path, database_url: str
) -> None:
    async with paused_download(stack, tmp_path, database_url) as connection:
        claimed: datetime = await connection.fetchval("SELECT lease_until FROM image.copies")

        async def lease_held_long_or_taken_again() -> bool:
            row = await connection.fetchrow("SELECT lease_until, attempts FROM image.copies")
            assert row is not None
            return bool(row["lease_until"] > claimed + timedelta(seconds=4 * LEASE) or row["attempts"] > 1)

        await assert_eventually(
            lease_held_long_or_taken_again, timeout=30.0, what="the lease kept past four of its lengths"
        )
        attempts = await connection.fetchval("SELECT attempts FROM image.copies")
    assert attempts == 1, "the copy was taken again while its worker was still at it"


async def test_a_whole_staging_file_is_stored_without_fetching_it_again(
    stack: ImageStack, tmp_path: Path, database_url: str
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    store_id = await stack.add_store("fsbackup", {"path": str(store)})
    image = tmp_path / "image.raw"
    image.write_bytes(os.urandom(2 * MIB))
    image_id = uuid.uuid4()
    staged = stack.deps.staging / f"{image_id}-{store_id}.part"  # what a worker that died after the fetch left
    staged.write_bytes(image.read_bytes())
    async with image_server() as server:
        command = RegisterImage(
            image_id=image_id,
            name="fetched-before",
            kind=ImageKind.TEMPLATE,
            format=ImageFormat.RAW,
            zone_id=ZONE,
            url=server.add("image.raw", image),
            checksum="{SHA-256}" + hashlib.sha256(image.read_bytes()).hexdigest(),
        )
        outcome = await stack.outcome(await stack.send(command), ImageDownloaded, ImageDownloadFailed)
    assert isinstance(outcome, ImageDownloaded), outcome
    assert server.requests == [("image.raw", f"bytes={2 * MIB}-")], "fetched again"
    connection = await asyncpg.connect(database_url)
    try:
        assert await connection.fetchval("SELECT attempts FROM image.copies") == 1
    finally:
        await connection.close()
    assert not staged.exists()


async def test_a_worker_whose_copy_another_took_stops(stack: ImageStack, tmp_path: Path, database_url: str) -> None:
    stopped = "download taken by another worker; this one stops"
    with capture_logs() as logs:
        async with paused_download(stack, tmp_path, database_url) as connection:
            # Another worker's claim, as claim_copy makes it once a lease ran out (here: this worker lost the
            # database for longer than its lease, while its fetch went on).
            await connection.execute(
                "UPDATE image.copies SET attempts = attempts + 1, lease_until = now() + interval '1 hour'"
            )
            await assert_eventually(
                lambda: [line for line in logs if line["event"] == stopped], timeout=30.0, what="the worker stopping"
            )
            remaining: timedelta = await connection.fetchval("SELECT lease_until - now() FROM image.copies")
    assert remaining > timedelta(minutes=50), "the first worker overwrote the other's lease"


async def test_a_worker_whose_copy_another_took_changes_nothing_of_it(
    stack: ImageStack, tmp_path: Path, database_url: str
) -> None:
    """Between two of its lease keeper's checks, a worker that lost its copy to another cannot record progress on
    it, give it back, or end it: each is fenced by the attempt, which is the other worker's now."""
    async with paused_download(stack, tmp_path, database_url) as connection:
        row = await connection.fetchrow("SELECT * FROM image.copies")
        assert row is not None
        stale = repo.copy_from_row(row)
        await connection.execute(
            "UPDATE image.copies SET attempts = attempts + 1, lease_until = now() + interval '1 hour', done_bytes = 0"
        )
        before = await connection.fetchrow("SELECT state, lease_until, error, done_bytes FROM image.copies")
        assert await repo.record_progress(connection, stale, 12345, 99999, 1.0) is False
        assert await repo.release_copy(connection, stale, "a stale failure") is False
        assert await repo.finish_copy(connection, stale, DownloadState.DOWNLOAD_ERROR, error="a stale end") is False
        assert await connection.fetchrow("SELECT state, lease_until, error, done_bytes FROM image.copies") == before
