"""Pool life cycle: add, remove, maintenance and enable/disable, kept in `.strata-pool.json`; and pool stats."""

import os
import shutil
from pathlib import Path

from plugins.qcow2fs.context import PoolContext
from plugins.qcow2fs.layout import check_id, read_record, write_record
from plugins.qcow2fs.qemu_img import read_header
from plugins.sdk.errors import AlreadyExists, FailedPrecondition, NotFound
from plugins.sdk.types import Pool, PoolState, PoolStats


async def add_pool(context: PoolContext, pool_id: str) -> Pool:
    """Take the directory into use as `pool_id`; the same id again is a no-op, another id is `AlreadyExists`."""
    check_id(pool_id, "pool_id")
    root = context.config.path
    if not await context.off_loop(root.is_dir):
        raise FailedPrecondition(f"the pool path {root} is not a directory", field="path")
    if context.config.shared and not await context.off_loop(os.path.ismount, root):
        raise FailedPrecondition(f"the pool path {root} is not a mount point but the pool is shared", field="path")
    record = await context.off_loop(read_record, context.layout.pool_record)
    if record is not None:
        if record["pool_id"] != pool_id:
            raise AlreadyExists(f"the path {root} already holds pool {record['pool_id']!r}", field="pool_id")
        return Pool(pool_id=pool_id, state=PoolState(record["state"]))
    await context.off_loop(_make_dirs, context)
    await context.off_loop(write_record, context.layout.pool_record, {"pool_id": pool_id, "state": "enabled"})
    return Pool(pool_id=pool_id, state=PoolState.ENABLED)


def _make_dirs(context: PoolContext) -> None:
    context.layout.volumes.mkdir(exist_ok=True)
    context.layout.snapshots.mkdir(exist_ok=True)


async def remove_pool(context: PoolContext, pool_id: str) -> None:
    """Stop using the directory; refused while volumes remain; an already removed pool is fine."""
    record = await context.off_loop(read_record, context.layout.pool_record)
    if record is None:
        return
    if record["pool_id"] != pool_id:
        raise NotFound(f"the path holds pool {record['pool_id']!r}, not {pool_id!r}", field="pool_id")
    volumes = await context.off_loop(_volume_names, context.layout.volumes)
    if volumes:
        raise FailedPrecondition(f"pool {pool_id!r} still holds {len(volumes)} volume(s)")
    await context.off_loop(_remove_pool_files, context)


def _remove_pool_files(context: PoolContext) -> None:
    for directory in (context.layout.snapshots, context.layout.volumes, context.layout.staging):
        if directory.exists():
            for leftover in directory.iterdir():
                # Only what a crash can leave: an empty volume directory, a stray record, a staged file.
                if leftover.is_dir():
                    shutil.rmtree(leftover)
                else:
                    leftover.unlink()
            directory.rmdir()
    context.layout.pool_record.unlink(missing_ok=True)


def _volume_names(directory: Path) -> list[str]:
    if not directory.exists():
        return []
    return sorted(entry.name for entry in directory.iterdir() if (entry / "volume.json").exists())


async def get_pool(context: PoolContext) -> Pool:
    """The pool and its state; `NotFound` before `add_pool`."""
    record = await context.off_loop(read_record, context.layout.pool_record)
    if record is None:
        raise NotFound(f"no pool has been added at {context.config.path}")
    return Pool(pool_id=record["pool_id"], state=PoolState(record["state"]))


async def set_state(context: PoolContext, state: PoolState, *, allowed_from: set[PoolState]) -> Pool:
    """Move the pool to `state` (idempotent); `FailedPrecondition` from a state that does not allow it."""
    pool = await get_pool(context)
    if pool.state is state:
        return pool
    if pool.state not in allowed_from:
        raise FailedPrecondition(f"pool {pool.pool_id!r} is {pool.state.value}: it cannot become {state.value}")
    await context.off_loop(write_record, context.layout.pool_record, {"pool_id": pool.pool_id, "state": state.value})
    return Pool(pool_id=pool.pool_id, state=state)


async def volume_ids(context: PoolContext) -> list[str]:
    """Ids of the pool's volumes (finished or not)."""
    return await context.off_loop(_volume_names, context.layout.volumes)


async def pool_stats(context: PoolContext) -> PoolStats:
    """Capacity and free space from statvfs, the volumes' virtual sizes from their headers."""
    await get_pool(context)
    await context.settle()  # space a merge is giving back in the background is free space
    fs = await context.off_loop(os.statvfs, context.config.path)
    capacity = fs.f_blocks * fs.f_frsize
    used = capacity - fs.f_bavail * fs.f_frsize
    names = await volume_ids(context)
    virtual = 0
    for name in names:
        try:
            virtual += (await context.off_loop(read_header, context.layout.active(name))).size_bytes
        except NotFound:
            continue  # a volume being created or deleted right now

    return PoolStats(capacity_bytes=capacity, used_bytes=used, allocated_bytes=virtual, volumes=len(names))
