"""Coalescing: fold a layer into a hidden parent so the chain gets shorter and deleted snapshots free their space.

A hidden layer H (no live snapshot, not active) that has exactly one child C is merged with it:

1. measure C's data (the bytes C's file holds on disk, plus room for H's new metadata: commit cannot write more)
   and refuse with `ResourceExhausted` if the filesystem lacks it;
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
from plugins.sdk import faults
from plugins.sdk.errors import ResourceExhausted
from plugins.sdk.types import Chain

_MERGE_MARGIN = 4 * 2**20  # bytes kept free beyond the bound, for the parent's header and table growth
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
        # The blocking work between qemu-img runs goes to the thread pool in as few hops as possible: on a
        # busy host each hop costs milliseconds, and the merge should cost little more than the commit itself.
        layers, free, needed = await context.off_loop(_look, context, volume_id)
        while (pair := next_merge(layers)) is not None:
            parent, child = pair
            if needed > free:
                raise ResourceExhausted(f"coalescing needs {needed} bytes but only {max(free, 0)} are free")
            await context.qemu.run("commit", "-q", "-d", "-f", "qcow2", str(directory / child))
            await faults.point("qcow2fs.coalesce.after_commit")
            layers, free, needed = await context.off_loop(_pivot_and_look, context, volume_id, parent, child)
            await faults.point("qcow2fs.coalesce.after_pivot")
        return await context.off_loop(_finish, context, volume_id)


def _look(context: PoolContext, volume_id: str) -> tuple[Layers, int, int]:
    """The volume's layers, the bytes a merge may use, and the bytes the next merge needs (blocking)."""
    fs = os.statvfs(context.config.path)
    layers = scan_layers(context, volume_id)
    pair = next_merge(layers)
    needed = _room_for_merge(context.layout.volume_dir(volume_id) / pair[1]) if pair else 0
    return layers, fs.f_bavail * fs.f_frsize - context.config.reserve_bytes, needed


def _room_for_merge(child: Path) -> int:
    """An upper bound of what committing `child` writes into its parent: the data `child` holds on disk, plus
    the parent's new L2 and refcount entries (10 bytes a 64 KiB cluster; 1/4096 of the data, rounded up generously)
    and a fixed margin. Reading the file's allocation is a stat, where `qemu-img measure` costs a process."""
    allocated = child.stat().st_blocks * 512
    return allocated + allocated // 1024 + _MERGE_MARGIN


def _pivot_and_look(context: PoolContext, volume_id: str, parent: str, child: str) -> tuple[Layers, int, int]:
    """Rename the merged parent over its child; then look again (blocking).

    No directory fsync here, on purpose: qemu-img commit has flushed the parent's data before it exits, so if a power
    loss forgets the rename, the old names come back with the merged parent under the untouched child, which reads
    the same and which the next coalesce merges again. Skipping it saves a journal commit per merge.
    """
    directory = context.layout.volume_dir(volume_id)
    (directory / parent).replace(directory / child)
    return _look(context, volume_id)


def _finish(context: PoolContext, volume_id: str) -> Chain:
    collect_garbage(context, volume_id)
    return describe_chain(context, volume_id)
