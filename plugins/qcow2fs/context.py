"""What every qcow2fs operation shares: the pool's layout, qemu-img, the config, per-volume locks and pool checks."""

import asyncio
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

    def lock(self, volume_id: str) -> asyncio.Lock:
        """Serialises the operations on one volume in this process (the orchestrator's saga locks span hosts)."""
        return self._locks.setdefault(volume_id, asyncio.Lock())

    async def off_loop(self, function: Callable[..., T], *args: object) -> T:
        """Run blocking file work in a thread."""
        return await asyncio.to_thread(function, *args)

    async def pool_state(self) -> PoolState:
        """The pool's state; `FailedPrecondition` before the pool was added."""
        record = await self.off_loop(read_record, self.layout.pool_record)
        if record is None:
            raise FailedPrecondition(f"no pool has been added at {self.config.path} (call add_pool first)")
        return PoolState(record["state"])

    async def require_changeable(self) -> None:
        """Refuse volume changes while the pool is in maintenance."""
        if await self.pool_state() is PoolState.MAINTENANCE:
            raise FailedPrecondition("the pool is in maintenance: volumes cannot change until it is cancelled")

    async def require_placeable(self) -> None:
        """Refuse new volumes unless the pool is enabled."""
        state = await self.pool_state()
        if state is not PoolState.ENABLED:
            raise FailedPrecondition(f"the pool is {state.value}: no new volume can be placed on it")

    async def volume_record(self, volume_id: str) -> dict[str, object]:
        """The record of a finished volume; `NotFound` otherwise."""
        record = await self.off_loop(read_record, self.layout.volume_record(volume_id))
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
