"""What every qcow2fs operation shares: the pool's layout, qemu-img, the config, per-volume locks and pool checks."""

import asyncio
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from plugins.qcow2fs.config import Qcow2fsConfig
from plugins.qcow2fs.layout import Layout, read_record
from plugins.qcow2fs.qemu_img import QemuImg, read_header
from plugins.sdk.errors import FailedPrecondition, NotFound
from plugins.sdk.types import PoolState, Volume, VolumeFormat

T = TypeVar("T")


@dataclass
class PoolContext:
    """One opened pool."""

    config: Qcow2fsConfig
    layout: Layout
    qemu: QemuImg
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _releasing: set[asyncio.Future[None]] = field(default_factory=set)

    def lock(self, volume_id: str) -> asyncio.Lock:
        """Serialises the operations on one volume in this process (the orchestrator's saga locks span hosts)."""
        return self._locks.setdefault(volume_id, asyncio.Lock())

    async def off_loop(self, function: Callable[..., T], *args: object) -> T:
        """Run blocking file work in a thread."""
        return await asyncio.to_thread(function, *args)

    def release_later(self, held: int) -> None:
        """Close a descriptor that holds a replaced or deleted file, in a thread, without waiting for it (on the loop).

        Closing the last hold on an unlinked file frees its blocks: on a filesystem mounted with online discard that
        is a discard request per extent, ~60 ms for 256 MiB here, which the caller need not wait for. `settle` waits.
        """
        try:
            release = asyncio.get_running_loop().run_in_executor(None, _close_quietly, held)
        except RuntimeError:  # the loop's executor is shutting down with it: close here
            _close_quietly(held)
            return
        self._releasing.add(release)
        release.add_done_callback(self._releasing.discard)

    async def settle(self) -> None:
        """Wait until the files released with `release_later` have given their space back."""
        while self._releasing:
            await asyncio.gather(*self._releasing)

    async def pool_state(self) -> PoolState:
        """The pool's state; `FailedPrecondition` before the pool was added."""
        return await self.off_loop(self.read_pool_state)

    def read_pool_state(self) -> PoolState:
        """`pool_state`, blocking."""
        record = read_record(self.layout.pool_record)
        if record is None:
            raise FailedPrecondition(f"no pool has been added at {self.config.path} (call add_pool first)")
        return PoolState(record["state"])

    async def require_changeable(self) -> None:
        """Refuse volume changes while the pool is in maintenance."""
        await self.off_loop(self.check_changeable)

    def check_changeable(self) -> None:
        """`require_changeable`, blocking."""
        if self.read_pool_state() is PoolState.MAINTENANCE:
            raise FailedPrecondition("the pool is in maintenance: volumes cannot change until it is cancelled")

    async def require_placeable(self) -> None:
        """Refuse new volumes unless the pool is enabled."""
        state = await self.pool_state()
        if state is not PoolState.ENABLED:
            raise FailedPrecondition(f"the pool is {state.value}: no new volume can be placed on it")

    async def volume_record(self, volume_id: str) -> dict[str, object]:
        """The record of a finished volume; `NotFound` otherwise."""
        return await self.off_loop(self.read_volume_record, volume_id)

    def read_volume_record(self, volume_id: str) -> dict[str, object]:
        """`volume_record`, blocking."""
        record = read_record(self.layout.volume_record(volume_id))
        if record is None or record.get("state") != "ready":
            raise NotFound(f"volume {volume_id!r} does not exist", field="volume_id")
        return record

    async def describe_volume(self, volume_id: str) -> Volume:
        """The volume as the SDK returns it, read from its files."""
        await self.volume_record(volume_id)
        active = self.layout.active(volume_id)
        header = await self.off_loop(read_header, active)
        allocated = await self.off_loop(allocated_bytes, self.layout.volume_dir(volume_id))
        return Volume(
            volume_id=volume_id,
            size_bytes=header.size_bytes,
            allocated_bytes=allocated,
            format=VolumeFormat.QCOW2,
            path=str(active),
        )


def _close_quietly(held: int) -> None:
    # Linux releases the descriptor even when close reports an error, and the file is unlinked: nothing to retry.
    with contextlib.suppress(OSError):
        os.close(held)


def allocated_bytes(directory: Path) -> int:
    """Bytes the images in `directory` take on disk (blocking)."""
    total = 0
    for entry in os.scandir(directory):
        if entry.name.endswith(".qcow2") and entry.is_file():
            total += entry.stat().st_blocks * 512
    return total


def now() -> str:
    """The current UTC time as ISO 8601, for records."""
    return datetime.now(UTC).isoformat()
