"""Templates end to end, every daemon a process of its own (storage, image, agent, snapshot) on RabbitMQ and
PostgreSQL, driven by `strata` as an operator types it:

a qcow2 template made by qemu-img (with data) is registered from a URL; five volumes made from it on a qcow2fs pool
are linked clones on the pool's one base copy; a guest's write into one (qemu-io) changes neither the other four nor
the template (SHA-256 of the store's image, of the base copy's and of each volume's content through `qemu-img
convert -O raw`); deleting the template is refused while they use it, naming them; the template copied to a second
zone's image store (`template copy --to-zone`) makes a volume on that zone's pool with the template's content; once
every volume is deleted, so is the template, with its base copy on each pool and its object in each store.
"""

import asyncio
import json
from pathlib import Path

import pytest

from tests.e2e.image_cloud import (
    MIB,
    ImageCloud,
    cloud_fixture,  # noqa: F401  # the `cloud` fixture
    content_sha256,
    make_template,
    run,
    settled,
    sha256_of,
    stored_images,
    stored_sha256,
)
from tests.helpers import assert_eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]  # daemons started and killed on a shared machine
SIZE = 16 * MIB


async def backing_file(locator: str) -> str | None:
    info = json.loads(await run("qemu-img", "info", "-U", "--output=json", locator))
    backing: str | None = info.get("full-backing-filename")
    return backing


async def test_volumes_from_a_template_stay_apart_and_the_template_reaches_another_zone(
    cloud: ImageCloud, tmp_path: Path
) -> None:
    for kind in ("storage", "image", "agent", "snapshot"):  # the snapshot service: a volume's delete asks it
        await cloud.start(kind)
    pool_a = await cloud.add_pool("pool-a")
    store_a = await cloud.add_store("store-a")
    pool_b = await cloud.add_pool("pool-b", zone="zone-b")
    store_b = await cloud.add_store("store-b", zone="zone-b")
    template = await make_template(tmp_path, data_mib=6, size_mib=16)
    template_sha = sha256_of(template)
    content = await content_sha256(template, tmp_path)

    registered = await cloud.register("debian", template)
    image_id = registered["registered"]["image_id"]
    assert [download["checksum"] for download in registered["downloads"]] == [f"sha256:{template_sha}"]

    names = [f"vm-{n}-root" for n in range(5)]
    volumes = await asyncio.gather(*(cloud.volume_from(name, SIZE, "debian") for name in names))
    bases = {await backing_file(volume["locator"]) for volume in volumes}
    assert len(bases) == 1, f"five linked clones on one base copy, not {bases}"
    (base,) = bases
    assert base is not None
    assert Path(base).is_relative_to(pool_a), base
    for volume in volumes:
        assert await content_sha256(volume["locator"], tmp_path) == content

    written, *others = volumes
    await run("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 1M 2M", written["locator"])  # as a guest writes
    assert await content_sha256(written["locator"], tmp_path) != content
    for volume in others:
        assert await content_sha256(volume["locator"], tmp_path) == content, f"{volume['name']} changed"
    assert await content_sha256(base, tmp_path) == content, "the base copy changed"
    assert await stored_sha256(store_a, image_id, tmp_path) == template_sha, "the store's template changed"

    refused = await cloud.strata("template", "delete", "debian", expect=1)
    assert all(volume["volume_id"] in refused for volume in volumes), refused
    listed = await cloud.strata_json("template", "show", "debian")
    assert not listed["deleting"]

    copied = await cloud.strata_json("template", "copy", "debian", "--to-zone", "zone-b")
    assert [each["checksum"] for each in copied["copies"]] == [f"sha256:{template_sha}"]
    assert await stored_sha256(store_b, image_id, tmp_path) == template_sha
    in_b = await cloud.volume_from("vm-b-root", SIZE, "debian", "--zone", "zone-b")
    assert Path(in_b["locator"]).is_relative_to(pool_b), in_b["locator"]
    backing = await backing_file(in_b["locator"])
    assert backing is not None
    assert Path(backing).is_relative_to(pool_b), "zone B's volume is on its own pool's base copy"
    assert await content_sha256(in_b["locator"], tmp_path) == content

    await settled(cloud, pool_a, pool_b)

    for volume in [*volumes, in_b]:
        await cloud.strata("volume", "delete", volume["name"])

    async def template_deleted() -> bool:  # refused until the last VolumeDeleted reached the image service
        code, _, _ = await cloud.run_strata("template", "delete", "debian")
        return code == 0

    await assert_eventually(template_deleted, timeout=60.0, what="the template deleted once its volumes are gone")
    await assert_eventually(
        lambda: not Path(base).exists() and not Path(backing).exists(),
        timeout=60.0,
        what="both base copies deleted with their template",
    )
    for store in (store_a, store_b):
        assert await stored_images(store) == [], f"{store.name} still holds the template"
    assert await cloud.rows("SELECT * FROM image.base_copies") == []
