"""Template copies SIGKILLed in the middle of their transfer, every daemon a process of its own: the template is read
from an S3 image store (SeaweedFS) through a proxy that lets a third of it through and then holds the transfer;
once the daemon reported progress (some bytes copied, not all) the test kills it, releases the proxy and starts the
next one, while the operator's `strata` command waits:

- the image service copying the template to another zone's store (its staging file half written): the next service
  takes the copy once the dead one's lease ran out, fetches it again and stores it; `template copy` ends DOWNLOADED;
- the agent fetching a template's base copy onto a pool: the command goes back to the queue, the next agent removes
  the dead one's staging file and makes the base copy and the volume; `volume create --template` ends Ready.

After the restart nothing is left in progress, nothing in staging, and the data are the template's.
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from bus.rabbit import RabbitTransport
from bus.settings import BusSettings
from schemas import Event
from schemas.agent import CopyProgressed, CopyStage
from schemas.image import ImageDownloadProgressed
from services.cli.sending import Client
from tests.e2e.image_cloud import (
    MIB,
    PLACEMENT,
    ImageCloud,
    cloud_fixture,  # noqa: F401  # the `cloud` fixture
    content_sha256,
    files_under,
    make_template,
    settled,
    sha256_of,
    stored_sha256,
)
from tests.e2e.image_s3 import s3_store

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]  # daemons started and killed on a shared machine
SIZE = 32 * MIB
PASSED = 10 * MIB
"""Bytes the proxy lets through once armed: two 4 MiB chunks of the template's eight, and a part of the third."""
E = TypeVar("E", bound=Event)


@asynccontextmanager
async def watching(cloud: ImageCloud) -> AsyncIterator[Client]:
    """A client of the test's namespace recording every event from now on."""
    settings = BusSettings(amqp_url=cloud.env["STRATA_AMQP_URL"], namespace=cloud.env["STRATA_NAMESPACE"])
    async with Client(RabbitTransport(settings, purpose="image-s3-kills")) as client:
        yield client


async def progressed(client: Client, kind: type[E], where: Callable[[E], bool]) -> None:
    """Wait for a progress event saying that part of the copy, not all of it, is done."""
    await client.watch.wait_for(None, (kind,), timeout=120.0, where=where)


async def test_a_zone_copy_killed_mid_transfer_is_fetched_again_by_the_next_service(
    cloud: ImageCloud, tmp_path: Path
) -> None:
    await cloud.start("image")
    store_b = await cloud.add_store("store-b", zone="zone-b")
    template = await make_template(tmp_path, data_mib=32, size_mib=32)
    async with s3_store(cloud, "store-a") as proxy, watching(cloud) as client:
        image_id = (await cloud.register("debian", template))["registered"]["image_id"]
        proxy.budget = PASSED
        copying = asyncio.create_task(cloud.strata("template", "copy", "debian", "--to-zone", "zone-b"))
        try:
            await progressed(
                client,
                ImageDownloadProgressed,
                lambda event: 0 < event.done_bytes < (event.total_bytes or 0) and str(event.image_id) == image_id,
            )
            await cloud.daemons["image"].kill()
            states = await cloud.rows(
                "SELECT c.state FROM image.copies c JOIN image.stores s USING (store_id) WHERE s.name = 'store-b'"
            )
            assert [row["state"] for row in states] == ["DOWNLOAD_IN_PROGRESS"]
            assert files_under(cloud.staging), "the killed service's half-written staging file"

            proxy.release()
            await cloud.start("image")
            said = await copying
        finally:
            copying.cancel()
    assert "DOWNLOADED to store" in said, said
    assert await stored_sha256(store_b, image_id, tmp_path) == sha256_of(template)
    await settled(cloud)


async def test_a_base_copy_killed_mid_transfer_is_made_by_the_next_agent(cloud: ImageCloud, tmp_path: Path) -> None:
    for kind in ("storage", "image", "agent"):
        await cloud.start(kind)
    pool = await cloud.add_pool("pool-a")
    template = await make_template(tmp_path, data_mib=32, size_mib=32)
    content = await content_sha256(template, tmp_path)
    async with s3_store(cloud, "store-a") as proxy, watching(cloud) as client:
        await cloud.register("debian", template)
        proxy.budget = PASSED
        creating = asyncio.create_task(
            cloud.strata_json(
                "volume", "create", "vm-1-root", str(SIZE), "--template", "debian", *PLACEMENT, "--timeout", "600"
            )
        )
        try:
            await progressed(
                client,
                CopyProgressed,
                lambda event: event.stage is CopyStage.STORE and 0 < event.done_bytes < event.total_bytes,
            )
            await cloud.daemons["agent"].kill()
            states = await cloud.rows("SELECT state FROM storage.volumes WHERE name = 'vm-1-root'")
            assert [row["state"] for row in states] == ["Creating"]

            proxy.release()
            await cloud.start("agent")
            await creating
        finally:
            creating.cancel()
        first = await cloud.strata_json("volume", "show", "vm-1-root")
        second = await cloud.volume_from("vm-2-root", SIZE, "debian")
    for volume in (first, second):
        assert await content_sha256(volume["locator"], tmp_path) == content
    await settled(cloud, pool)
