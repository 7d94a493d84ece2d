"""Coalescing: fold a layer into a hidden parent so the chain gets shorter and deleted snapshots free their space.

A hidden layer H (no live snapshot, not active) that has exactly one child C is merged with it:

1. measure C's data (the bytes C's file holds on disk, plus room for H's new metadata: commit cannot write more)
   and refuse with `ResourceExhausted` if the filesystem lacks it;
2. `qemu-img commit -d C` copies C's data into H. C over H still reads the same, so a crash here is harmless;
3. rename H over C's file: the pivot. The merged image takes C's name, so C's children and the snapshot or
   the volume path that named C need no change at all (no header of theirs is rewritten). C's old file is held
   open across the rename and closed in the background once the call is done: freeing its blocks (a discard per
   extent on a filesystem mounted with `discard`) is the filesystem's work, not the merge's, and the caller need
   not wait for it; the next coalesce and the pool's stats wait for it, so free space is never overstated;
4. drop any layer left without a purpose.

The single-child rule is what makes step 2 safe: no other branch reads H. A template a volume is built on is not a
layer of the volume and is never written. A re-call after a crash finds H still hidden with the single child C
(the pivot had not happened: commit again, which rewrites the same data) or finds the merge done.
"""

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from plugins.qcow2fs.chain import Layers, describe_chain, drop_orphans, scan_layers
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


@dataclass(frozen=True)
class _Look:
    """What the volume's layers say next: a merge and the room for it, or the chain when nothing is left to merge."""

    merge: tuple[str, str] | None
    free: int = 0
    needed: int = 0
    chain: Chain | None = None


async def coalesce(context: PoolContext, volume_id: str) -> Chain:
    """Merge every mergeable pair of the volume's chain, one at a time; return the chain after."""
    directory = context.layout.volume_dir(volume_id)  # checks the id before a lock is made for it
    async with context.lock(volume_id):
        await context.settle()  # space a previous merge is still giving back counts as free for this one
        # The blocking work between qemu-img runs goes to the thread pool in as few hops as possible (one before
        # the commit, one after): on a busy host each hop costs milliseconds, and the merge should cost little
        # more than the commit itself.
        look = await context.off_loop(_first_look, context, volume_id)
        loop = asyncio.get_running_loop()

        def release(held: int) -> None:  # called from the pivot's thread
            loop.call_soon_threadsafe(context.release_later, held)

        while look.merge is not None:
            parent, child = look.merge
            if look.needed > look.free:
                raise ResourceExhausted(f"coalescing needs {look.needed} bytes but only {max(look.free, 0)} are free")
            await context.qemu.run("commit", "-q", "-d", "-f", "qcow2", str(directory / child))
            await faults.point("qcow2fs.coalesce.after_commit")
            look = await context.off_loop(_pivot, context, volume_id, parent, child, release)
            await faults.point("qcow2fs.coalesce.after_pivot")
        assert look.chain is not None
        return look.chain


def _first_look(context: PoolContext, volume_id: str) -> _Look:
    """Check the volume and the pool, then look at the layers (blocking)."""
    context.read_volume_record(volume_id)
    context.check_changeable()
    return _look(context, volume_id, scan_layers(context, volume_id))


def _look(context: PoolContext, volume_id: str, layers: Layers) -> _Look:
    """The next merge with the bytes it may use and needs, or, with none left, the chain after garbage is dropped."""
    merge = next_merge(layers)
    if merge is None:
        remaining, _ = drop_orphans(context, volume_id, layers)
        return _Look(merge=None, chain=describe_chain(context, volume_id, remaining))
    fs = os.statvfs(context.config.path)
    free = fs.f_bavail * fs.f_frsize - context.config.reserve_bytes
    return _Look(merge=merge, free=free, needed=_room_for_merge(context.layout.volume_dir(volume_id) / merge[1]))


def _room_for_merge(child: Path) -> int:
    """An upper bound of what committing `child` writes into its parent: the data `child` holds on disk, plus
    the parent's new L2 and refcount entries (10 bytes a 64 KiB cluster; 1/4096 of the data, rounded up generously)
    and a fixed margin. Reading the file's allocation is a stat, where `qemu-img measure` costs a process."""
    allocated = child.stat().st_blocks * 512
    return allocated + allocated // 1024 + _MERGE_MARGIN


def _pivot(context: PoolContext, volume_id: str, parent: str, child: str, release: Callable[[int], None]) -> _Look:
    """Rename the merged parent over its child, then look again (blocking).

    The child's old file is held open across the rename. After the last merge the hold goes to `release` (the
    context's background release, handed over from this thread, so a caller cancelled meanwhile cannot lose it);
    when another merge follows, it is closed here: that merge's room check needs the space back first.

    No directory fsync here, on purpose: qemu-img commit has flushed the parent's data before it exits, so if a power
    loss forgets the rename, the old names come back with the merged parent under the untouched child, which reads
    the same and which the next coalesce merges again. Skipping it saves a journal commit per merge.
    """
    directory = context.layout.volume_dir(volume_id)
    held = os.open(directory / child, os.O_RDONLY)
    try:
        (directory / parent).replace(directory / child)
        layers = scan_layers(context, volume_id)
        last = next_merge(layers) is None
    except BaseException:
        os.close(held)
        raise
    if last:
        release(held)
    else:
        os.close(held)
    return _look(context, volume_id, layers)
