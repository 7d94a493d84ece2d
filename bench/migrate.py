"""The fallback migration of a volume through the running services, against bare qemu-img in the same run.

    python bench/migrate.py [--size-mib 1024] [--rounds 3] [--workdir DIR]   (STRATA_AMQP_URL, STRATA_DATABASE_URL)

prints one JSON line: {"bench": "migrate", "migrate_ms": ..., "direct_ms": ..., "qemu_img_ms": ...,
"migrate_ratio_vs_qemu_img": ..., "direct_ratio_vs_qemu_img": ...}

The storage, snapshot, image and orchestrator daemons and an agent run in this process on RabbitMQ and PostgreSQL
(a database and a namespace of the bench's own), with two qcow2fs pools and an fsbackup image store (no
compression, 4 MiB chunks) as the staging area. A volume of `--size-mib` random bytes is migrated from one pool to
the other (`volume.migrate` sent -> `volume.migrated`: plan, copy out to the store, copy in, switch, clean-up), the
saga's whole work as a user waits for it, forced through the store (`staged`: the fallback between hosts); then a
second volume of the same bytes the direct way (both pools are on the one agent's host: it copies pool to pool).
The baseline is what the copies are at their barest: `qemu-img convert` of a volume of the same bytes to a staging
file, then from that file into the destination directory, flushed there (`-t writeback`) as strata flushes a
volume's data before it is recorded ready. The two take turns (`--rounds`, the migrated volume going back and forth
between the pools) and each figure is the best of its turns: this machine's disk and page cache swing the same
copy's time threefold within minutes, so one turn each compared whichever state each happened to meet. Target
ratio <= 1.2.
"""

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.system_support import CLUSTER, HOST, MIB, make_random_raw, run, running_system, seconds, send
from schemas.image import AddImageStore, ImageStoreAdded, ImageStoreAddFailed
from schemas.migration import MigrateVolume, VolumeMigrated, VolumeMigrateFailed
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

ZONE = uuid.UUID("00000000-0000-4000-8000-0000000000bf")


async def volume_with_data(client: Client, pool_id: uuid.UUID, raw: Path, size_mib: int) -> tuple[uuid.UUID, Path]:
    """A volume on `pool_id` holding the bytes of `raw` (written into it by qemu-img, as a guest would have)."""
    volume_id = uuid.uuid4()
    await send(
        client,
        CreateVolume(
            volume_id=volume_id,
            name=f"bench-{volume_id.hex[:6]}",
            size_bytes=size_mib * MIB,
            zone_id=ZONE,
            pool_id=pool_id,
            host=HOST,
            cluster_id=CLUSTER,
        ),
        VolumeCreated,
        VolumeCreateFailed,
    )
    listed = await client.ask(ListVolumes(volume_id=volume_id), VolumesListed, timeout=60.0)
    path = Path(str(listed.volumes[0].locator))
    await run("qemu-img", "convert", "-n", "-f", "raw", "-O", "qcow2", str(raw), str(path))
    return volume_id, path


def _freeing(workdir: Path) -> bool:
    """Whether space under `workdir` is still being given back behind an answer: a deleted file this process (the
    agent's) still holds open, or a transit copy moved aside and not yet removed."""
    for entry in os.scandir("/proc/self/fd"):
        try:
            target = os.readlink(entry.path)
        except OSError:
            continue
        if target.startswith(str(workdir)) and target.endswith(" (deleted)"):
            return True
    deleting = workdir / "store" / "transit" / ".deleting"
    return deleting.is_dir() and any(deleting.iterdir())


async def settled(workdir: Path, timeout: float = 60.0) -> None:
    """Wait (untimed) until the last migration's deletes have given their space back, so that the next contender,
    the baseline included, does not pay for them."""
    deadline = asyncio.get_running_loop().time() + timeout
    while await asyncio.to_thread(_freeing, workdir):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"the migration's deletes did not give their space back within {timeout:g} s")
        await asyncio.sleep(0.02)


async def figures(size_mib: int, workdir: Path, rounds: int) -> dict[str, float]:
    async with running_system(workdir, ("storage", "snapshot", "image", "orchestrator", "agent")) as client:
        pools = {side: uuid.uuid4() for side in ("source", "target")}
        for side, pool_id in pools.items():
            (workdir / side).mkdir()
            await send(
                client,
                AddPool(
                    pool_id=pool_id,
                    name=f"bench-{side}",
                    plugin="qcow2fs",
                    config={"path": str(workdir / side)},
                    scope=PoolScope.HOST,
                    cluster_id=CLUSTER,
                    host=HOST,
                    zone_id=ZONE,
                ),
                PoolAdded,
                PoolAddFailed,
            )
        (workdir / "store").mkdir()
        store = {"path": str(workdir / "store"), "compression": "none", "chunk_size_kib": 4096}
        await send(
            client,
            AddImageStore(store_id=uuid.uuid4(), name="bench", zone_id=ZONE, plugin="fsbackup", config=store),
            ImageStoreAdded,
            ImageStoreAddFailed,
        )
        raw = workdir / "data.raw"
        await asyncio.to_thread(make_random_raw, raw, size_mib)

        def migrate(volume_id: uuid.UUID, *, staged: bool, to: str = "target") -> Callable[[], Awaitable[object]]:
            command = MigrateVolume(volume_id=volume_id, pool_id=pools[to], staged=staged)
            return lambda: send(client, command, VolumeMigrated, VolumeMigrateFailed)

        small = workdir / "small.raw"
        await asyncio.to_thread(make_random_raw, small, 16)
        for through_store in (True, False):  # warm-up: the first of each command pays for connections, caches
            warm, _ = await volume_with_data(client, pools["source"], small, 16)
            await seconds(migrate(warm, staged=through_store))
            await settled(workdir)
        volume_id, _ = await volume_with_data(client, pools["source"], raw, size_mib)
        direct_id, path = await volume_with_data(client, pools["source"], raw, size_mib)
        raw.unlink()
        staged, landed = workdir / "staged.qcow2", workdir / "target" / "baseline.qcow2"

        async def bare() -> None:
            await run("qemu-img", "convert", "-W", "-f", "qcow2", "-O", "qcow2", str(path), str(staged))
            await run(
                "qemu-img", "convert", "-W", "-t", "writeback", "-f", "qcow2", "-O", "qcow2", str(staged), str(landed)
            )

        baselines, migrations = [], []
        for turn in range(rounds):  # turns, best of each: a neighbour's burst hits one turn, not one contender
            baselines.append(await seconds(bare))
            staged.unlink()
            landed.unlink()
            migrations.append(await seconds(migrate(volume_id, staged=True, to=("target", "source")[turn % 2])))
            await settled(workdir)
        direct = await seconds(migrate(direct_id, staged=False))
    return {"migrate_ms": min(migrations) * 1000, "direct_ms": direct * 1000, "qemu_img_ms": min(baselines) * 1000}


async def main(size_mib: int, workdir: Path, rounds: int) -> dict[str, object]:
    measured = await figures(size_mib, workdir, rounds)
    return {
        "bench": "migrate",
        "volume_mib": size_mib,
        **{key: round(value, 1) for key, value in measured.items()},
        "migrate_ratio_vs_qemu_img": round(measured["migrate_ms"] / measured["qemu_img_ms"], 2),
        "direct_ratio_vs_qemu_img": round(measured["direct_ms"] / measured["qemu_img_ms"], 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="strata-bench-migrate-", dir=arguments.workdir))
    try:
        print(json.dumps(asyncio.run(main(arguments.size_mib, workdir, arguments.rounds))))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
