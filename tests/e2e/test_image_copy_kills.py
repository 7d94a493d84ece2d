"""Template copies cut by a SIGKILL, every daemon a process of its own, while an operator's `strata` command waits:

- the image service killed in the middle of a copy to another zone (its chunks in the destination store, the
  manifest not yet written: the chunked store's `fsbackup.image.before_manifest`): the next image service takes the
  copy once the dead one's lease ran out and finishes it; `strata template copy` ends DOWNLOADED;
- the agent killed in the middle of a template's base copy onto a pool (fetched from the store and converted, not yet
  published: qcow2fs's `qcow2fs.volume.before_publish`): the command goes back to the queue, the next agent removes
  the dead one's staging files and makes the base copy and the volume; `strata volume create --template` ends Ready.

The process kills itself at the fault point (`tests.e2e.killable_daemons`): the "middle" is the same on every run.
After the restart nothing is left in progress (copy states, volume states, agent operations), nothing in staging, and
the data are the template's.
"""

import asyncio
from pathlib import Path

import pytest

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

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]  # daemons started and killed on a shared machine
SIZE = 32 * MIB


async def test_a_zone_copy_cut_by_a_killed_image_service_is_finished_by_the_next(
    cloud: ImageCloud, tmp_path: Path
) -> None:
    await cloud.start("image")
    await cloud.add_store("store-a")
    store_b = await cloud.add_store("store-b", zone="zone-b")
    template = await make_template(tmp_path, data_mib=24, size_mib=32)
    image_id = (await cloud.register("debian", template))["registered"]["image_id"]
    assert await cloud.daemons["image"].terminate() == 0
    await cloud.start("image", kill_at=["fsbackup.image.before_manifest"])

    copying = asyncio.create_task(cloud.strata("template", "copy", "debian", "--to-zone", "zone-b"))
    try:
        await cloud.killed_itself("image")
        states = await cloud.rows(
            "SELECT c.state FROM image.copies c JOIN image.stores s USING (store_id) WHERE s.name = 'store-b'"
        )
        assert [row["state"] for row in states] == ["DOWNLOAD_IN_PROGRESS"]
        assert files_under(cloud.staging), "the killed service's staging file is there until a service resumes it"

        await cloud.start("image")
        said = await copying
    finally:
        copying.cancel()
    assert "DOWNLOADED to store" in said, said
    assert await stored_sha256(store_b, image_id, tmp_path) == sha256_of(template)
    await settled(cloud)


async def test_a_base_copy_cut_by_a_killed_agent_is_made_by_the_next(cloud: ImageCloud, tmp_path: Path) -> None:
    await cloud.start("storage")
    await cloud.start("image")
    await cloud.start("agent", kill_at=["qcow2fs.volume.before_publish"])
    pool = await cloud.add_pool("pool-a")
    await cloud.add_store("store-a")
    template = await make_template(tmp_path, data_mib=24, size_mib=32)
    await cloud.register("debian", template)
    content = await content_sha256(template, tmp_path)

    creating = asyncio.create_task(
        cloud.strata_json(
            "volume", "create", "vm-1-root", str(SIZE), "--template", "debian", *PLACEMENT, "--timeout", "600"
        )
    )
    try:
        await cloud.killed_itself("agent")
        states = await cloud.rows("SELECT state FROM storage.volumes WHERE name = 'vm-1-root'")
        assert [row["state"] for row in states] == ["Creating"]
        assert [path.name for path in files_under(pool) if path.name.endswith(".tmp")], "the base copy half made"

        await cloud.start("agent")
        await creating
    finally:
        creating.cancel()
    first = await cloud.strata_json("volume", "show", "vm-1-root")
    assert await content_sha256(first["locator"], tmp_path) == content
    second = await cloud.volume_from("vm-2-root", SIZE, "debian")
    assert await content_sha256(second["locator"], tmp_path) == content
    base_copies = await cloud.rows("SELECT base_volume_id, ready FROM image.base_copies")
    assert [row["ready"] for row in base_copies] == [True], "one base copy, on the pool"
    users = await cloud.rows("SELECT volume_id, created FROM image.base_users")
    assert [row["created"] for row in users] == [True, True], users
    await settled(cloud, pool)
