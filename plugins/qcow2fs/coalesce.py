"""Coalescing: fold a layer into a hidden parent so the chain gets shorter and deleted snapshots free their space.

A hidden layer H (no live snapshot, not active) that has exactly one child C is merged with it:

1. measure C's data (`qemu-img measure` of C alone) and refuse with `ResourceExhausted` if the filesystem lacks it;
2. `qemu-img commit -d C` copies C's data into H. C over H still reads the same, so a crash here is harmless;
3. rename H over C's file: the pivot. The merged image takes C's name, so C's children and the snapshot or
   the volume path that named C need no change at all (no header of theirs is rewritten);
4. drop any layer left without a purpose.

The single-child rule is what makes step 2 safe: no other branch reads H. A template a volume is built on is not a
layer of the volume and is never written. A re-call after a crash finds H still hidden with the single child C
(the pivot had not happened: commit again, which rewrites the same data) or finds the merge done.
"""

import os
from pathlib import Path

from plugins.qcow2fs.chain import Layers, collect_garbage, describe_chain, scan_layers
from plugins.qcow2fs.context import PoolContext
from plugins.qcow2fs.layout import sync_dir
from plugins.sdk import faults
from plugins.sdk.errors import ResourceExhausted
from plugins.sdk.types import Chain

FAULT_POINTS = ("qcow2fs.coalesce.after_commit", "qcow2fs.coalesce.after_pivot")


def next_merge(layers: Layers) -> tuple[str, str] | None:
    """A (hidden parent, its only child) pair that can be merged, or None."""
    for name in layers.backing:
        if not layers.hidden(name):
            continue
        children = layers.children(name)
        if len(children) == 1:
            return name, children[0]
    return None


async def coalesce(context: PoolContext, volume_id: str) -> Chain:
    """Merge every mergeable pair of the volume's chain, one at a time; return the chain after."""
    await context.volume_record(volume_id)
    async with context.lock(volume_id):
        await context.require_changeable()
        directory = context.layout.volume_dir(volume_id)
        while True:
            layers = await context.off_loop(scan_layers, context, volume_id)
            pair = next_merge(layers)
            if pair is None:
                break
            parent, child = pair
            await _require_room(context, await context.qemu.measure_layer(directory / child))
            await context.qemu.run("commit", "-q", "-d", "-f", "qcow2", str(directory / child))
            await faults.point("qcow2fs.coalesce.after_commit")
            await context.off_loop(_pivot, directory, parent, child)
            await faults.point("qcow2fs.coalesce.after_pivot")
        await context.off_loop(collect_garbage, context, volume_id)
        return await context.off_loop(describe_chain, context, volume_id)


async def _require_room(context: PoolContext, needed: int) -> None:
    fs = await context.off_loop(os.statvfs, context.config.path)
    available = fs.f_bavail * fs.f_frsize - context.config.reserve_bytes
    if needed > available:
        raise ResourceExhausted(f"coalescing needs {needed} bytes but only {max(available, 0)} are free")


def _pivot(directory: Path, parent: str, child: str) -> None:
    (directory / parent).replace(directory / child)
    sync_dir(directory)
