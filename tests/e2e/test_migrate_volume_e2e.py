"""Migrating a volume between pools of different hosts, every daemon a process of its own (storage, snapshot, image,
orchestrator, and the agents of h1 and h2), on the real servers: neither pool can reach the other and qcow2fs has
no native migration, so the volume goes through the zone's image store (fsbackup). Then the same with a fault at
each step in turn: a plugin failing at its fault points, the source agent, the destination agent and the
orchestrator SIGKILLed and restarted. Every run ends with the volume Ready on exactly one pool holding its data
(sha256 of its content), no staged copy, no destination leftover, no lock held.
"""

import asyncio
import hashlib
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from uuid import UUID

import pytest
import pytest_asyncio

from plugins.chunked.driver import ChunkedDriver
from plugins.registry import load_plugins
from sagas.work import saga_id_for
from schemas.image import AddImageStore
from schemas.migration import MigrateVolume
from schemas.snapshot import CreateSnapshot
from schemas.storage import CreateVolume, DisablePool, EnablePool
from tests.e2e.cloud_support import HOST2, KillableDaemon, add_pool, open_cloud, strata, write_mib
from tests.e2e.revert_vm_support import CLUSTER, HOST, Cloud

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]
SIZE = 256 << 20


@dataclass
class Zone:
    """The cloud with its two pools (one per host) and its staging store."""

    cloud: Cloud
    source_pool: UUID
    target_pool: UUID
    source_dir: Path
    target_dir: Path
    store_dir: Path
    store_id: UUID


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def zone(postgres_url: str, amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Zone]:
    base = tmp_path_factory.mktemp("migrate")
    async with open_cloud(postgres_url, amqp_url, base, second_host=True, more=("image",)) as cloud:
        source_pool, target_pool = uuid.uuid4(), uuid.uuid4()
        await add_pool(cloud, source_pool, base / "pool-h1", name="pool-h1")
        await add_pool(cloud, target_pool, base / "pool-h2", host=HOST2, cluster="c2", name="pool-h2")
        store_id = uuid.uuid4()
        store_dir = base / "staging"
        await asyncio.to_thread(store_dir.mkdir)
        await cloud.publish(
            AddImageStore(
                store_id=store_id,
                name="staging",
                zone_id=cloud.zone_id,
                plugin="fsbackup",
                config={"path": str(store_dir), "compression": "none"},
            )
        )
        await cloud.wait(
            lambda: cloud.value("SELECT count(*) FROM image.stores WHERE store_id = $1", store_id), "the image store"
        )
        yield Zone(cloud, source_pool, target_pool, base / "pool-h1", base / "pool-h2", store_dir, store_id)


async def new_volume(zone: Zone, *, vm_id: UUID | None = None) -> tuple[UUID, str]:
    """A 256 MiB volume on the source pool with data in four places; its content's sha256."""
    cloud = zone.cloud
    volume_id = uuid.uuid4()
    await cloud.publish(
        CreateVolume(
            volume_id=volume_id,
            name=f"mig-{volume_id.hex[:6]}",
            size_bytes=SIZE,
            zone_id=cloud.zone_id,
            pool_id=zone.source_pool,
            host=HOST,
            cluster_id=CLUSTER,
            vm_id=vm_id,
        )
    )

    async def ready() -> bool:
        state = await cloud.value("SELECT state FROM storage.volumes WHERE volume_id = $1", volume_id)
        known = await cloud.value(
            "SELECT count(*) FROM snapshot.volumes WHERE size_bytes IS NOT NULL AND pool_id IS NOT NULL "
            "AND volume_id = $1",
            volume_id,
        )
        return state == "Ready" and known == 1

    await cloud.wait(ready, "the volume Ready and known to the snapshot service")
    path = str(await cloud.value("SELECT locator FROM storage.volumes WHERE volume_id = $1", volume_id))
    for index, offset in enumerate((0, 60, 130, 240)):
        await write_mib(path, 0x31 + index, 8, offset_mib=offset)
    return volume_id, await content_sha256(path)


async def content_sha256(path: str) -> str:
    """sha256 of the volume's virtual content (read as raw through qemu-img)."""

    def digest() -> str:
        raw = Path(path).with_name(f".{uuid.uuid4().hex}.raw")
        try:
            subprocess.run(["qemu-img", "convert", "-O", "raw", path, str(raw)], check=True, capture_output=True)
            sha = hashlib.sha256()
            with raw.open("rb") as handle:
                while block := handle.read(4 << 20):
                    sha.update(block)
            return sha.hexdigest()
        finally:
            raw.unlink(missing_ok=True)

    return await asyncio.to_thread(digest)


async def migrate(zone: Zone, volume_id: UUID) -> UUID:
    envelope = await zone.cloud.publish(MigrateVolume(volume_id=volume_id, pool_id=zone.target_pool))
    return saga_id_for(envelope.message_id)


async def ends(zone: Zone, saga_id: UUID, timeout: float = 180.0) -> str:
    """The saga's end status, followed by its error and steps when it did not complete (for the test's message)."""
    cloud = zone.cloud

    async def ended() -> str | None:
        status = await cloud.value("SELECT status FROM sagas.instances WHERE saga_id = $1", saga_id)
        return str(status) if status in {"COMPLETED", "COMPENSATED", "FAILED", "STUCK"} else None

    await cloud.wait(ended, f"saga {saga_id} ends", timeout=timeout)
    status = str(await cloud.value("SELECT status FROM sagas.instances WHERE saga_id = $1", saga_id))
    if status == "COMPLETED":
        return status
    error = await cloud.value("SELECT error FROM sagas.instances WHERE saga_id = $1", saga_id)
    steps = await cloud.rows(
        "SELECT seq, kind, status, record->'command'->>'type' AS type, record->'error'->>'message' AS error "
        "FROM sagas.steps WHERE saga_id = $1 ORDER BY seq",
        saga_id,
    )
    return f"{status}: {error}; steps: {[dict(step) for step in steps]}"


async def _staging_store(zone: Zone) -> ChunkedDriver:
    plugin = load_plugins().get("fsbackup")
    driver = plugin.open(plugin.manifest.config_model.model_validate({"path": str(zone.store_dir)}))
    assert isinstance(driver, ChunkedDriver)
    return driver


def staged_objects(zone: Zone, *, whole: bool = False) -> list[str]:
    """The images and transit copies the staging store holds (through its plugin, as an agent sees it); with
    `whole`, only copies written to the end."""

    async def listed() -> list[str]:
        driver = await _staging_store(zone)
        try:
            copies = await driver.list_transit_copies()
            images = [ref.image_id for ref in await driver.list_images()]
            return images + [copy_id for copy_id, done in copies.items() if done or not whole]
        finally:
            await driver.close()

    return asyncio.run(listed())


def drop_staged_objects(zone: Zone) -> None:
    """Delete every image and transit copy of the staging store (a store that lost its data)."""

    async def dropped() -> None:
        driver = await _staging_store(zone)
        try:
            for object_id in [ref.image_id for ref in await driver.list_images()] + list(
                await driver.list_transit_copies()
            ):
                await driver.delete_image(object_id)
        finally:
            await driver.close()

    asyncio.run(dropped())


async def assert_clean(zone: Zone, volume_id: UUID, saga_id: UUID, digest: str, *, moved: bool) -> None:
    """Ready on exactly one pool with its data; nothing staged, nothing left on the other pool, no lock."""
    cloud = zone.cloud
    row = await cloud.db.fetchrow("SELECT state, pool_id, locator FROM storage.volumes WHERE volume_id = $1", volume_id)
    assert row is not None
    assert row["state"] == "Ready"
    assert row["pool_id"] == (zone.target_pool if moved else zone.source_pool)
    home, other = (zone.target_dir, zone.source_dir) if moved else (zone.source_dir, zone.target_dir)
    assert str(row["locator"]).startswith(str(home)), row["locator"]
    assert await content_sha256(str(row["locator"])) == digest
    assert not list((other / "volumes").glob(f"{volume_id}*")), f"a copy of {volume_id} is left in {other}"
    assert not await asyncio.to_thread(staged_objects, zone), "a staged copy is left in the store"
    assert await cloud.value("SELECT count(*) FROM sagas.locks WHERE holder = $1", saga_id) == 0
    pool_of_snapshots = await cloud.value("SELECT pool_id FROM snapshot.volumes WHERE volume_id = $1", volume_id)
    assert pool_of_snapshots == row["pool_id"]


async def test_a_volume_moves_to_a_pool_of_another_host_through_the_image_store(zone: Zone) -> None:
    volume_id, digest = await new_volume(zone)
    saga_id = await migrate(zone, volume_id)
    assert await ends(zone, saga_id) == "COMPLETED"
    await assert_clean(zone, volume_id, saga_id, digest, moved=True)
    zone.cloud.assert_alive()


async def test_the_cli_migrates_with_a_progress_bar_and_back(zone: Zone) -> None:
    volume_id, digest = await new_volume(zone)
    output = await strata(zone.cloud, "volume", "migrate", str(volume_id), "--pool", "pool-h2", "--json")
    assert json.loads(output[output.index("{") :])["pool_id"] == str(zone.target_pool)
    saga_id = UUID(str(await zone.cloud.value("SELECT saga_id FROM sagas.instances ORDER BY created_at DESC LIMIT 1")))
    await assert_clean(zone, volume_id, saga_id, digest, moved=True)


async def test_a_volume_with_snapshots_is_refused_up_front_and_left_alone(zone: Zone) -> None:
    volume_id, digest = await new_volume(zone)
    snapshot_id = uuid.uuid4()
    await zone.cloud.publish(CreateSnapshot(snapshot_id=snapshot_id, volume_id=volume_id, name="keep"))
    await zone.cloud.wait(
        lambda: zone.cloud.value(
            "SELECT state = 'CreatedOnPrimary' FROM snapshot.snapshots WHERE snapshot_id = $1", snapshot_id
        ),
        "the snapshot",
    )
    saga_id = await migrate(zone, volume_id)
    assert (await ends(zone, saga_id)).startswith("COMPENSATED")
    error = str(await zone.cloud.value("SELECT error FROM sagas.instances WHERE saga_id = $1", saga_id))
    assert "snapshots" in error, error
    await assert_clean(zone, volume_id, saga_id, digest, moved=False)


@pytest.mark.parametrize(
    ("agent", "point"),
    [
        ("agent", "fsbackup.image.before_manifest"),  # the copy out dies before the staged copy is complete
        ("agent2", "qcow2fs.volume.before_publish"),  # the copy in dies before the destination copy is published
    ],
)
async def test_a_plugin_failing_at_a_step_is_asked_again_and_the_migration_completes(
    zone: Zone, agent: str, point: str
) -> None:
    volume_id, digest = await new_volume(zone)
    daemon = zone.cloud.daemons[agent]
    daemon.stop()
    daemon.start(STRATA_AGENT_FAULT_POINTS=json.dumps([point]))
    saga_id = await migrate(zone, volume_id)
    assert await ends(zone, saga_id) == "COMPLETED"
    await assert_clean(zone, volume_id, saga_id, digest, moved=True)
    zone.cloud.assert_alive()


@pytest.mark.parametrize(
    ("agent", "point"),
    [
        ("agent", "fsbackup.image.before_manifest"),  # the source host dies during the copy out
        ("agent2", "qcow2fs.volume.before_publish"),  # the destination host dies during the copy in
    ],
)
async def test_an_agent_killed_mid_copy_and_restarted_finishes_the_migration(
    zone: Zone, agent: str, point: str
) -> None:
    volume_id, digest = await new_volume(zone)
    daemon = zone.cloud.daemons[agent]
    assert isinstance(daemon, KillableDaemon)
    daemon.stop()
    daemon.start_killed_at(point)
    saga_id = await migrate(zone, volume_id)

    async def dead() -> bool:
        return not daemon.alive

    await zone.cloud.wait(dead, f"{agent} killed itself at {point}", timeout=120)
    daemon.start()
    assert await ends(zone, saga_id) == "COMPLETED"
    await assert_clean(zone, volume_id, saga_id, digest, moved=True)
    zone.cloud.assert_alive()


@pytest.mark.parametrize("after_steps", [5, 7])  # the copy out done; the copy in done (the switch next)
async def test_the_orchestrator_killed_mid_migration_and_restarted_finishes_it(zone: Zone, after_steps: int) -> None:
    volume_id, digest = await new_volume(zone)
    saga_id = await migrate(zone, volume_id)
    cloud = zone.cloud

    async def progressed() -> bool:
        done = await cloud.value(
            "SELECT count(*) FROM sagas.steps WHERE saga_id = $1 AND status = 'SUCCEEDED'", saga_id
        )
        return int(str(done)) >= after_steps

    await cloud.wait(progressed, f"{after_steps} steps done", timeout=120)
    orchestrator = cloud.daemons["orchestrator"]
    orchestrator.kill()
    orchestrator.start()
    assert await ends(zone, saga_id) == "COMPLETED"
    await assert_clean(zone, volume_id, saga_id, digest, moved=True)
    cloud.assert_alive()


async def test_a_failure_before_the_switch_undoes_everything(zone: Zone) -> None:
    volume_id, digest = await new_volume(zone)
    cloud = zone.cloud
    destination = cloud.daemons["agent2"]
    destination.stop()  # the copy in waits in the destination agent's queue
    saga_id = await migrate(zone, volume_id)

    async def copied_out() -> bool:
        return bool(await asyncio.to_thread(partial(staged_objects, zone, whole=True)))

    await cloud.wait(copied_out, "the staged copy in the store", timeout=120)
    await asyncio.to_thread(drop_staged_objects, zone)  # the store lost it: the copy in cannot succeed
    destination.start()
    assert (await ends(zone, saga_id)).startswith("COMPENSATED")
    await assert_clean(zone, volume_id, saga_id, digest, moved=False)
    cloud.assert_alive()


async def test_a_disabled_destination_or_one_out_of_the_vms_reach_is_refused_up_front(zone: Zone) -> None:
    cloud = zone.cloud
    volume_id, digest = await new_volume(zone)
    await cloud.publish(DisablePool(pool_id=zone.target_pool))
    await cloud.wait(
        lambda: cloud.value("SELECT state = 'Disabled' FROM storage.pools WHERE pool_id = $1", zone.target_pool),
        "the destination disabled",
    )
    saga_id = await migrate(zone, volume_id)
    outcome = await ends(zone, saga_id)
    assert outcome.startswith(
        "COMPENSATED: step 2 (volume.migration.plan) failed: destination pool pool-h2 is Disabled"
    )
    await assert_clean(zone, volume_id, saga_id, digest, moved=False)
    await cloud.publish(EnablePool(pool_id=zone.target_pool))
    await cloud.wait(
        lambda: cloud.value("SELECT state = 'Up' FROM storage.pools WHERE pool_id = $1", zone.target_pool),
        "the destination enabled again",
    )
    # A VM's volume on h1 may not move to storage local to h2, where the VM cannot reach it.
    volume_id, digest = await new_volume(zone, vm_id=uuid.uuid4())
    saga_id = await migrate(zone, volume_id)
    assert "must stay reachable from the VM's host" in await ends(zone, saga_id)
    await assert_clean(zone, volume_id, saga_id, digest, moved=False)
