"""Block maps of qcow2 chains, from `qemu-img map --output=json`, and replacing a volume's content in one switch.

A snapshot's layer holds exactly the clusters written between the snapshot before it and this one, so the extents
`qemu-img map` reports at a depth above the `since` snapshot's layer are what changed since then (no dirty bitmap,
so a VM stop loses nothing). An extent with data lies at `offset` in the file at its depth, read in place. A
deleted snapshot's layer stays in the chain until a coalesce merges it; once merged, what changed is unknown and
the map says so.
"""

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from plugins.qcow2fs.chain import collect_garbage
from plugins.qcow2fs.context import PoolContext
from plugins.qcow2fs.layout import sync_dir
from plugins.qcow2fs.qemu_img import convert_args
from plugins.qcow2fs.snapshots import get_snapshot, snapshot_image
from plugins.qcow2fs.volumes import check_size
from plugins.sdk.blocks import BlockMap, Extent
from plugins.sdk.errors import InvalidArgument, Unimplemented
from plugins.sdk.types import Volume, VolumeFormat


async def block_map(
    context: PoolContext, volume_id: str, snapshot_id: str | None, since_snapshot_id: str | None
) -> BlockMap:
    """The snapshot's (or the volume's current) extents, marked changed above the `since` snapshot's layer."""
    if snapshot_id is not None:
        snapshot = await get_snapshot(context, snapshot_id)
        if snapshot.volume_id != volume_id:
            raise InvalidArgument(f"snapshot {snapshot_id!r} is of volume {snapshot.volume_id!r}", field="snapshot_id")
        top = snapshot_image(context, snapshot)
    else:
        await context.volume_record(volume_id)
        top = context.layout.active(volume_id)
    chain = await context.qemu.info(top.absolute(), chain=True)
    files = _chain_files(top.absolute(), chain)
    size = int(str(chain[0]["virtual-size"]))
    full_since = since_snapshot_id is not None and await context.off_loop(
        context.layout.full_image(volume_id, since_snapshot_id).exists
    )
    since_depth, reason = _since_depth(context, volume_id, files, since_snapshot_id, full_since=full_since)
    mapped = json.loads(await context.qemu.run("map", "--output=json", "-U", str(top.absolute())))
    extents: list[Extent] = []
    for entry in mapped:
        start, length, depth = int(entry["start"]), int(entry["length"]), int(entry["depth"])
        changed = since_depth is None or (bool(entry["present"]) and depth < since_depth)
        if entry["data"] and not entry["zero"]:
            if "offset" not in entry:
                raise Unimplemented(f"{Path(files[depth]).name} has clusters that cannot be read in place")
            extents.append(Extent(start, length, files[depth], int(entry["offset"]), changed))
        else:
            extents.append(Extent(start, length, None, 0, changed))
    return BlockMap(size_bytes=size, extents=tuple(extents), changes_known=since_depth is not None, reason=reason)


def _chain_files(top: Path, chain: list[dict[str, object]]) -> list[str]:
    """The file at each depth of the chain, top first, as absolute paths."""
    files = [str(top)]
    for entry in chain[:-1]:
        backing = entry.get("full-backing-filename") or entry.get("backing-filename")
        path = Path(str(backing))
        files.append(str(path if path.is_absolute() else Path(files[-1]).parent / path))
    return files


def _since_depth(
    context: PoolContext, volume_id: str, files: list[str], since_snapshot_id: str | None, *, full_since: bool
) -> tuple[int | None, str | None]:
    if since_snapshot_id is None:
        return None, "no earlier snapshot to compare with"
    names = {
        context.layout.delta_layer(volume_id, since_snapshot_id).name,
        context.layout.full_image(volume_id, since_snapshot_id).name,
    }
    for depth, file in enumerate(files):
        if Path(file).name in names:
            return depth, None
    if full_since:
        # A full snapshot is a copy beside the chain: the volume's layers hold what was written before it too.
        return None, (
            f"snapshot {since_snapshot_id} is a full copy beside the chain, not one of its layers: "
            "what changed since it cannot be told from the layers"
        )
    return None, (
        f"the layer of snapshot {since_snapshot_id} is not under what is read (merged or reverted away, or newer than "
        "the snapshot backed up)"
    )


async def replace_content(context: PoolContext, volume_id: str, source: Path, source_format: VolumeFormat) -> Volume:
    """Build a standalone layer from `source`, then rename it over the active layer (the switch)."""
    if not source.is_absolute():
        raise InvalidArgument("source must be an absolute path", field="source")
    async with _new_layer(context, volume_id) as temporary:
        await context.qemu.run(
            *convert_args(source, temporary, source_format=source_format.value, target_format="qcow2")
        )
    return await context.describe_volume(volume_id)


@asynccontextmanager
async def new_content(context: PoolContext, volume_id: str, size_bytes: int) -> AsyncIterator[BlockMap]:
    """A fresh layer of `size_bytes` with every cluster's place allocated (`preallocation=metadata`: the qcow2
    tables map each guest cluster to a fixed offset of the file, whose data stays a hole until written), given as
    the extents `qemu-img map` reports, for a writer to fill in place; switched in on a clean exit, dropped on an
    error (`_new_layer`).

    The layer's unwritten clusters read as zeros (the file's holes), and `qemu-img map` reports them so: a restore
    into it writes the backup's bytes once, where `replace_content` writes them to a staging file and converts."""
    check_size(size_bytes)
    async with _new_layer(context, volume_id) as temporary:
        await context.qemu.run(
            "create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", str(temporary), str(size_bytes)
        )
        mapped = json.loads(await context.qemu.run("map", "--output=json", str(temporary)))
        extents = []
        for entry in mapped:
            if "offset" not in entry or int(entry["depth"]) != 0:
                raise Unimplemented(f"qemu-img left guest offset {entry['start']} without a place in the new layer")
            extents.append(Extent(int(entry["start"]), int(entry["length"]), str(temporary), int(entry["offset"])))
        yield BlockMap(size_bytes=size_bytes, extents=tuple(extents))


@asynccontextmanager
async def _new_layer(context: PoolContext, volume_id: str) -> AsyncIterator[Path]:
    """The active layer's replacement, built by the caller at the path given while the volume is held: fsynced and
    renamed over the active layer on a clean exit (the switch; its snapshots keep their layers), deleted on an error
    (the volume is then as it was)."""
    async with context.lock(volume_id):
        await context.volume_record(volume_id)
        await context.require_changeable()
        active = context.layout.active(volume_id)
        temporary = active.with_name(".replace.qcow2.tmp")
        await context.off_loop(temporary.unlink, True)
        try:
            yield temporary
            await context.off_loop(_fsync, temporary)
            await context.off_loop(_switch, temporary, active)
        except BaseException:
            await asyncio.shield(context.off_loop(temporary.unlink, True))
            raise
        await context.off_loop(collect_garbage, context, volume_id)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _switch(temporary: Path, active: Path) -> None:
    temporary.replace(active)
    sync_dir(active.parent)
