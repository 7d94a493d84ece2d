"""The demo's chapter on moving and tidying data: migrate a volume to a second pool through the zone's image store
(the migrate saga, with a progress bar per phase of the copy), check its bytes there, then delete a snapshot in the
middle of its chain and watch the coalesce saga merge it and give its space back."""

import asyncio
import uuid
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

from schemas.chain import ChainCoalesced, ChainDescribed, DescribeChain
from schemas.image import AddImageStore, ImageStoreAdded, ImageStoreAddFailed
from schemas.migration import MigrateVolume, VolumeMigrated, VolumeMigrateFailed
from schemas.snapshot import (
    CreateSnapshot,
    DeleteSnapshot,
    SnapshotCreated,
    SnapshotCreateFailed,
    SnapshotDeleted,
    SnapshotDeleteFailed,
)
from schemas.storage import (
    AddPool,
    CreateVolume,
    PoolAdded,
    PoolAddFailed,
    PoolScope,
    VolumeCreated,
    VolumeCreateFailed,
)
from schemas.storage_queries import ListVolumes, VolumesListed
from services.cli.sending import Client
from services.cli.snapshot_chain import draw
from services.cli.talking import human_bytes
from services.cli.volume_migrate import follow
from services.demo_data import checksum, write_pattern

SIZE = 16 * 1024 * 1024
TIMEOUT = 120.0  # an upper bound on a loaded machine, not an expected duration
DELTA = 2 * 1024 * 1024  # what each snapshot of the chapter holds


async def migrate_and_coalesce(
    console: Console,
    client: Client,
    *,
    zone_id: uuid.UUID,
    source_pool_id: uuid.UUID,
    workdir: Path,
    host: str,
    cluster: str,
) -> bool:
    """Run the chapter; True when the migrated volume holds its bytes and the coalesce freed the merged delta."""
    target_pool_id, store_id = uuid.uuid4(), uuid.uuid4()
    (workdir / "migrate-pool").mkdir()
    (workdir / "migrate-staging").mkdir()
    await client.send(
        AddPool(
            pool_id=target_pool_id,
            name="demo-pool-2",
            plugin="qcow2fs",
            config={"path": str(workdir / "migrate-pool")},
            scope=PoolScope.HOST,
            zone_id=zone_id,
            cluster_id=cluster,
            host=host,
            hypervisors=frozenset({"kvm"}),
        ),
        (PoolAdded,),
        (PoolAddFailed,),
        timeout=TIMEOUT,
    )
    await client.send(
        AddImageStore(
            store_id=store_id,
            name="demo-staging",
            zone_id=zone_id,
            plugin="fsbackup",
            config={"path": str(workdir / "migrate-staging"), "compression": "none"},
        ),
        (ImageStoreAdded,),
        (ImageStoreAddFailed,),
        timeout=TIMEOUT,
    )
    volume_id = uuid.uuid4()
    await client.send(
        CreateVolume(
            volume_id=volume_id,
            name="demo-data",
            size_bytes=SIZE,
            zone_id=zone_id,
            pool_id=source_pool_id,
            host=host,
            cluster_id=cluster,
        ),
        (VolumeCreated,),
        (VolumeCreateFailed,),
        timeout=TIMEOUT,
    )
    path = await _locator(client, volume_id)
    await write_pattern(path, 0x3C, offset=0, length=4 * 1024 * 1024)
    before = await checksum(path, workdir)
    console.print("[green]✓[/green] pool demo-pool-2 and image store demo-staging added; volume demo-data written")

    # Both pools are on this demo's one host, so its agent could copy directly; the demo asks for the fallback
    # through the zone's store, the path a migration between hosts of different clusters takes.
    envelope = await client.publish(MigrateVolume(volume_id=volume_id, pool_id=target_pool_id, staged=True))
    columns = (TextColumn("  {task.description}"), BarColumn(), DownloadColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        follower = asyncio.create_task(follow(client, progress, envelope.correlation_id, source_pool_id))
        try:
            migrated = await client.outcome(envelope, (VolumeMigrated,), (VolumeMigrateFailed,), timeout=TIMEOUT)
        finally:
            follower.cancel()
    assert isinstance(migrated, VolumeMigrated)
    path = await _locator(client, volume_id)
    after = await checksum(path, workdir)
    moved = after == before and str(path).startswith(str(workdir / "migrate-pool"))
    mark = "[green]✓[/green]" if moved else "[red]✗[/red]"
    console.print(
        f"{mark} demo-data migrated to demo-pool-2 ({migrated.method.value}, through demo-staging): "
        f"sha256 {after[:16]}… (expected {before[:16]}…)"
    )
    return moved and await _coalesce(console, client, volume_id, path)


async def _coalesce(console: Console, client: Client, volume_id: uuid.UUID, path: Path) -> bool:
    """Three snapshots with data between them; delete the middle one; the coalesce merges it and frees its space."""
    taken = []
    for index in range(3):
        await write_pattern(path, 0x40 + index, offset=0, length=DELTA)
        snapshot_id = uuid.uuid4()
        await client.send(
            CreateSnapshot(snapshot_id=snapshot_id, volume_id=volume_id, name=f"demo-data-s{index + 1}"),
            (SnapshotCreated,),
            (SnapshotCreateFailed,),
            timeout=TIMEOUT,
        )
        taken.append(snapshot_id)
    envelope = await client.publish(DeleteSnapshot(snapshot_id=taken[1]))
    await client.outcome(envelope, (SnapshotDeleted,), (SnapshotDeleteFailed,), timeout=TIMEOUT)
    merged = (await client.watch.wait_for(envelope.correlation_id, (ChainCoalesced,), timeout=TIMEOUT)).payload
    assert isinstance(merged, ChainCoalesced)
    chain = await client.ask(DescribeChain(volume_id=volume_id), ChainDescribed, timeout=TIMEOUT)
    console.print(draw("demo-data", chain))
    freed = merged.freed_bytes >= DELTA * 0.9  # the merged delta's data; its metadata counts a little on top
    mark = "[green]✓[/green]" if freed and not chain.pending else "[red]✗[/red]"
    console.print(
        f"{mark} snapshot demo-data-s2 deleted: the coalesce saga merged its delta into s3 and freed "
        f"{human_bytes(merged.freed_bytes)}"
    )
    return freed and not chain.pending


async def _locator(client: Client, volume_id: uuid.UUID) -> Path:
    listed = await client.ask(ListVolumes(volume_id=volume_id), VolumesListed, timeout=TIMEOUT)
    return Path(str(listed.volumes[0].locator))
