"""Templates into primary on the real servers: the storage, image and agent daemons in this process, a qcow2fs pool,
an fsbackup image store, and a template downloaded from an HTTP server started by the test.

Five volumes made from the template share one base copy on the pool (qcow2 overlays, the plugin claims
`linked_clone`); a write into one changes neither the others nor the template; the template cannot be deleted
while volumes use it (they are named), and once they are gone its base copy goes with it.
"""

import asyncio
import hashlib
import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bus.rabbit import RabbitTransport
from bus.settings import BusSettings
from schemas import Event
from schemas.agent import VolumeCreatedOnPool
from schemas.image import (
    AddImageStore,
    CreateImageFromVolume,
    DeleteImage,
    ImageDeleted,
    ImageDeleteFailed,
    ImageDownloaded,
    ImageDownloadFailed,
    ImageFormat,
    ImageRegisterFailed,
    ImageStoreAdded,
    ImageStoreAddFailed,
    RegisterImage,
)
from schemas.snapshot import CreateSnapshotOnPool, SnapshotCreatedOnPool, SnapshotCreateOnPoolFailed, SnapshotKind
from schemas.storage import (
    AddPool,
    CreateVolume,
    DeleteVolume,
    PoolAdded,
    PoolAddFailed,
    PoolScope,
    VolumeCreated,
    VolumeCreateFailed,
    VolumeDeleted,
    VolumeDeleteFailed,
)
from services.agent.settings import AgentSettings
from services.cli.sending import Client, CommandFailed
from services.image.settings import ImageSettings
from services.runtime.daemon import Settings
from services.stack import System
from tests.e2e.cloud_support import holds_mib
from tests.helpers import assert_eventually
from tests.image_http import image_server
from tests.integration.plugins_qcow2fs_support import require_qemu_tools

pytestmark = pytest.mark.integration
MIB = 1 << 20
HOST, CLUSTER = "tpl-host", "tpl-cluster"
ZONE = uuid.UUID("00000000-0000-4000-8000-0000000000b1")


@pytest.fixture
async def client(amqp_url: str, namespace: str, database_url: str, tmp_path: Path) -> AsyncIterator[Client]:
    require_qemu_tools()
    transport = RabbitTransport(BusSettings(amqp_url=amqp_url, namespace=namespace), purpose="template-test")
    system = await System.start(
        database_url,
        transport,
        settings=Settings(AgentSettings(host=HOST, cluster=CLUSTER), ImageSettings(staging_dir=tmp_path / "staging")),
        relay_poll=0.1,
        only=("storage", "image", "agent"),
    )
    try:
        async with Client(transport, owns_transport=False) as opened:
            yield opened
    finally:
        await system.stop()
        await transport.delete_namespace()


async def send(
    client: Client, command: object, success: type[Event], failure: type[Event], timeout: float = 60.0
) -> Event:
    assert isinstance(
        command,
        RegisterImage | AddImageStore | AddPool | CreateVolume | DeleteVolume | DeleteImage | CreateImageFromVolume,
    )
    return await client.send(command, (success,), (failure,), timeout=timeout)


def qemu_img(*args: str) -> str:
    return subprocess.run(["qemu-img", *args], check=True, capture_output=True, text=True).stdout


async def exit_status(*args: str) -> int:
    """Run a tool; its exit status (`qemu-img compare`: 0 identical, 1 different)."""
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await process.wait()


async def test_five_volumes_share_one_base_copy_and_stay_apart(client: Client, tmp_path: Path) -> None:
    pool_root = tmp_path / "pool"
    pool_root.mkdir()
    pool_id = uuid.uuid4()
    await send(
        client,
        AddPool(
            pool_id=pool_id,
            name="primary",
            plugin="qcow2fs",
            config={"path": str(pool_root)},
            scope=PoolScope.HOST,
            cluster_id=CLUSTER,
            host=HOST,
            zone_id=ZONE,
        ),
        PoolAdded,
        PoolAddFailed,
    )
    store_root = tmp_path / "secondary"
    store_root.mkdir()
    await send(
        client,
        AddImageStore(
            store_id=uuid.uuid4(), name="secondary", zone_id=ZONE, plugin="fsbackup", config={"path": str(store_root)}
        ),
        ImageStoreAdded,
        ImageStoreAddFailed,
    )
    raw = tmp_path / "template.raw"
    raw.write_bytes(os.urandom(2 * MIB) + bytes(6 * MIB))
    template_file = tmp_path / "template.qcow2"
    qemu_img("convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(template_file))
    template_sha = hashlib.sha256(template_file.read_bytes()).hexdigest()

    async with image_server() as server:
        template_id = uuid.uuid4()
        register = RegisterImage(
            image_id=template_id,
            name="debian",
            format=ImageFormat.QCOW2,
            zone_id=ZONE,
            url=server.add("debian.qcow2", template_file),
            checksum=f"{{SHA-256}}{template_sha}",
        )
        await send(client, register, ImageDownloaded, ImageDownloadFailed)

    volume_ids = [uuid.uuid4() for _ in range(5)]
    created = await asyncio.gather(
        *(
            send(
                client,
                CreateVolume(
                    volume_id=volume_id,
                    name=f"vm-root-{n}",
                    size_bytes=8 * MIB,
                    zone_id=ZONE,
                    host=HOST,
                    template_id=template_id,
                ),
                VolumeCreated,
                VolumeCreateFailed,
                timeout=120.0,
            )
            for n, volume_id in enumerate(volume_ids)
        )
    )
    assert all(isinstance(event, VolumeCreated) for event in created)
    on_pool = {
        event.payload.volume_id: event.payload
        for event in client.watch.events
        if isinstance(event.payload, VolumeCreatedOnPool) and event.payload.volume_id in volume_ids
    }
    assert {answer.linked for answer in on_pool.values()} == {True}
    bases = {answer.base_volume_id for answer in on_pool.values()}
    assert len(bases) == 1, "one base copy per (template, pool)"
    backing_files = {
        json.loads(qemu_img("info", "--output=json", "-U", answer.locator)).get("full-backing-filename")
        for answer in on_pool.values()
    }
    assert len(backing_files) == 1
    (base_file,) = backing_files
    assert base_file is not None
    assert str(pool_root) in base_file

    written, *others = volume_ids
    assert await exit_status("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 1M", on_pool[written].locator) == 0
    assert await exit_status("qemu-img", "compare", "-q", str(raw), on_pool[written].locator) == 1
    for volume_id in others:
        compared = await exit_status("qemu-img", "compare", "-q", str(raw), on_pool[volume_id].locator)
        assert compared == 0, "a write into one volume reached another"
    assert await exit_status("qemu-img", "compare", "-q", str(raw), base_file) == 0, "the base copy changed"

    with pytest.raises(CommandFailed) as refused:
        await send(client, DeleteImage(image_id=template_id), ImageDeleted, ImageDeleteFailed)
    assert all(str(volume_id) in refused.value.message for volume_id in volume_ids), refused.value.message

    for volume_id in volume_ids:
        await send(client, DeleteVolume(volume_id=volume_id), VolumeDeleted, VolumeDeleteFailed)

    async def deleted() -> bool:
        try:
            await send(client, DeleteImage(image_id=template_id), ImageDeleted, ImageDeleteFailed)
        except CommandFailed:  # the last VolumeDeleted may not have reached the image service yet
            return False
        return True

    await assert_eventually(deleted, timeout=30.0, what="the template deleted once its volumes are gone")
    await assert_eventually(
        lambda: not Path(base_file).exists(), timeout=30.0, what="the base copy deleted with its template"
    )


async def pool_and_store(client: Client, tmp_path: Path) -> uuid.UUID:
    """A qcow2fs pool on HOST and an fsbackup image store in ZONE, both under `tmp_path`; the pool's id."""
    pool_root, store_root = tmp_path / "pool", tmp_path / "secondary"
    pool_root.mkdir()
    store_root.mkdir()
    pool_id = uuid.uuid4()
    await send(
        client,
        AddPool(
            pool_id=pool_id,
            name="primary",
            plugin="qcow2fs",
            config={"path": str(pool_root)},
            scope=PoolScope.HOST,
            cluster_id=CLUSTER,
            host=HOST,
            zone_id=ZONE,
        ),
        PoolAdded,
        PoolAddFailed,
    )
    await send(
        client,
        AddImageStore(
            store_id=uuid.uuid4(), name="secondary", zone_id=ZONE, plugin="fsbackup", config={"path": str(store_root)}
        ),
        ImageStoreAdded,
        ImageStoreAddFailed,
    )
    return pool_id


async def test_a_template_made_from_a_volume_makes_volumes_with_its_content(client: Client, tmp_path: Path) -> None:
    pool_id = await pool_and_store(client, tmp_path)
    source_id = uuid.uuid4()
    create = CreateVolume(volume_id=source_id, name="golden", size_bytes=4 * MIB, zone_id=ZONE, host=HOST)
    await send(client, create, VolumeCreated, VolumeCreateFailed)
    (source,) = [e.payload for e in client.watch.events if isinstance(e.payload, VolumeCreatedOnPool)]
    assert await exit_status("qemu-io", "-f", "qcow2", "-c", "write -P 0x3c 0 2M", source.locator) == 0

    template_id = uuid.uuid4()
    made = CreateImageFromVolume(
        image_id=template_id,
        name="golden-template",
        zone_id=ZONE,
        volume_id=source_id,
        pool_id=pool_id,
        size_bytes=4 * MIB,
        host=HOST,
    )
    downloaded = await send(client, made, ImageDownloaded, ImageDownloadFailed)
    assert isinstance(downloaded, ImageDownloaded)
    assert downloaded.virtual_size_bytes == 4 * MIB

    copy_id = uuid.uuid4()
    from_template = CreateVolume(
        volume_id=copy_id, name="from-golden", size_bytes=4 * MIB, zone_id=ZONE, host=HOST, template_id=template_id
    )
    await send(client, from_template, VolumeCreated, VolumeCreateFailed)
    (copy,) = [
        e.payload
        for e in client.watch.events
        if isinstance(e.payload, VolumeCreatedOnPool) and e.payload.volume_id == copy_id
    ]
    assert await exit_status("qemu-img", "compare", "-q", source.locator, copy.locator) == 0


async def test_a_template_made_from_a_snapshot_has_the_volume_as_it_was(client: Client, tmp_path: Path) -> None:
    pool_id = await pool_and_store(client, tmp_path)
    source_id = uuid.uuid4()
    create = CreateVolume(volume_id=source_id, name="web", size_bytes=4 * MIB, zone_id=ZONE, host=HOST)
    await send(client, create, VolumeCreated, VolumeCreateFailed)
    (source,) = [e.payload for e in client.watch.events if isinstance(e.payload, VolumeCreatedOnPool)]
    assert await exit_status("qemu-io", "-f", "qcow2", "-c", "write -P 0x3c 0 2M", source.locator) == 0
    snapshot_id = uuid.uuid4()
    take = CreateSnapshotOnPool(
        pool_id=pool_id, volume_id=source_id, snapshot_id=snapshot_id, kind=SnapshotKind.DELTA, host=HOST
    )
    taken = await client.send(take, (SnapshotCreatedOnPool,), (SnapshotCreateOnPoolFailed,), timeout=60.0)
    assert isinstance(taken, SnapshotCreatedOnPool)
    # Written after the snapshot: the template must not have it.
    assert await exit_status("qemu-io", "-f", "qcow2", "-c", "write -P 0x7e 0 1M", source.locator) == 0

    template_id = uuid.uuid4()
    made = CreateImageFromVolume(
        image_id=template_id,
        name="before-upgrade",
        zone_id=ZONE,
        volume_id=source_id,
        snapshot_id=snapshot_id,
        pool_id=pool_id,
        size_bytes=4 * MIB,
        host=HOST,
    )
    downloaded = await client.send(made, (ImageDownloaded,), (ImageDownloadFailed, ImageRegisterFailed), timeout=60)
    assert isinstance(downloaded, ImageDownloaded)
    copy_id = uuid.uuid4()
    from_template = CreateVolume(
        volume_id=copy_id, name="web-2", size_bytes=4 * MIB, zone_id=ZONE, host=HOST, template_id=template_id
    )
    await send(client, from_template, VolumeCreated, VolumeCreateFailed)
    (copy,) = [
        e.payload
        for e in client.watch.events
        if isinstance(e.payload, VolumeCreatedOnPool) and e.payload.volume_id == copy_id
    ]
    assert await holds_mib(copy.locator, 0x3C, 2)  # the content at the snapshot, not the later 0x7e
    assert await holds_mib(source.locator, 0x7E, 1)  # while the volume itself moved on
