"""The fallback migration of a volume through the running services, against bare qemu-img in the same run.

    python bench/migrate.py [--size-mib 1024] [--workdir DIR]   (STRATA_AMQP_URL, STRATA_DATABASE_URL)

prints one JSON line: {"bench": "migrate", "migrate_ms": ..., "direct_ms": ..., "qemu_img_ms": ...,
"migrate_ratio_vs_qemu_img": ..., "direct_ratio_vs_qemu_img": ...}

The storage, snapshot, image and orchestrator daemons and an agent run in this process on RabbitMQ and PostgreSQL
(a database and a namespace of the bench's own), with two qcow2fs pools and an fsbackup image store (no
compression, 4 MiB chunks) as the staging area. A volume of `--size-mib` random bytes is migrated from one pool to
the other (`volume.migrate` sent -> `volume.migrated`: plan, copy out to the store, copy in, switch, clean-up), the
saga's whole work as a user waits for it, forced through the store (`staged`: the fallback between hosts); then a
second volume of the same bytes the direct way (both pools are on the one agent's host: it copies pool to pool).
The baseline is what the copies are at their barest: `qemu-img convert` of the same volume to a staging file, then
from that file into the destination directory. Target ratio <= 1.2.
"""

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bus.rabbit import RabbitTransport
from bus.settings import BusSettings
from schemas import Event, Message
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
from services.agent.settings import AgentSettings
from services.cli.sending import Client
from services.image.settings import ImageSettings
from services.runtime.daemon import Settings
from services.runtime.settings import RuntimeSettings
from services.stack import System

MIB = 1024 * 1024
HOST, CLUSTER = "bench-host", "bench-cluster"
ZONE = uuid.UUID("00000000-0000-4000-8000-0000000000bf")
AMQP_URL = os.environ.get("STRATA_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
DATABASE_URL = os.environ.get("STRATA_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


async def run(*args: str) -> None:
    """Run a tool, failing loudly."""
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{args[0]} failed: {err.decode()}")


async def seconds(action: Callable[[], Awaitable[object]]) -> float:
    """Seconds `action` takes, after flushing dirty pages so that no run pays for the previous one's writes."""
    await asyncio.to_thread(os.sync)
    started = time.perf_counter()
    await action()
    return time.perf_counter() - started


def make_random_raw(path: Path, size_mib: int) -> None:
    with path.open("wb") as raw:
        for _ in range(size_mib):
            raw.write(os.urandom(MIB))


async def send(client: Client, command: Message, success: type[Event], failure: type[Event]) -> Event:
    return await client.send(command, (success,), (failure,), timeout=3600.0)


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


async def figures(size_mib: int, workdir: Path) -> dict[str, float]:
    name = f"strata_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(DATABASE_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    database_url = urlunsplit(urlsplit(DATABASE_URL)._replace(path=f"/{name}"))
    transport = RabbitTransport(
        BusSettings(amqp_url=AMQP_URL, namespace=f"bench{uuid.uuid4().hex[:8]}"), purpose="bench"
    )
    settings = Settings(
        RuntimeSettings(secret_key_file=workdir / "secret.key", log_level="ERROR"),
        AgentSettings(host=HOST, cluster=CLUSTER),
        ImageSettings(staging_dir=workdir / "image-staging"),
    )
    only = ("storage", "snapshot", "image", "orchestrator", "agent")
    system = await System.start(database_url, transport, settings=settings, relay_poll=0.1, only=only)
    try:
        async with Client(transport, owns_transport=False) as client:
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

            def migrate(volume_id: uuid.UUID, *, staged: bool) -> Callable[[], Awaitable[object]]:
                command = MigrateVolume(volume_id=volume_id, pool_id=pools["target"], staged=staged)
                return lambda: send(client, command, VolumeMigrated, VolumeMigrateFailed)

            small = workdir / "small.raw"
            await asyncio.to_thread(make_random_raw, small, 16)
            for through_store in (True, False):  # warm-up: the first of each command pays for connections, caches
                warm, _ = await volume_with_data(client, pools["source"], small, 16)
                await seconds(migrate(warm, staged=through_store))
            volume_id, path = await volume_with_data(client, pools["source"], raw, size_mib)
            direct_id, _ = await volume_with_data(client, pools["source"], raw, size_mib)
            raw.unlink()
            staged, landed = workdir / "staged.qcow2", workdir / "target" / "baseline.qcow2"

            async def bare() -> None:
                await run("qemu-img", "convert", "-W", "-f", "qcow2", "-O", "qcow2", str(path), str(staged))
                await run("qemu-img", "convert", "-W", "-f", "qcow2", "-O", "qcow2", str(staged), str(landed))

            baseline = await seconds(bare)
            staged.unlink()
            landed.unlink()
            migrated = await seconds(migrate(volume_id, staged=True))
            direct = await seconds(migrate(direct_id, staged=False))
    finally:
        await system.stop()
        await transport.delete_namespace()
        admin = await asyncpg.connect(DATABASE_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
    return {"migrate_ms": migrated * 1000, "direct_ms": direct * 1000, "qemu_img_ms": baseline * 1000}


async def main(size_mib: int, workdir: Path) -> dict[str, object]:
    measured = await figures(size_mib, workdir)
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
    arguments = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="strata-bench-migrate-", dir=arguments.workdir))
    try:
        print(json.dumps(asyncio.run(main(arguments.size_mib, workdir))))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
