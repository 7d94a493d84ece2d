"""`Qcow2fsDriver`: primary storage and snapshots on qcow2 files, one driver per pool directory."""

from contextlib import AbstractAsyncContextManager
from functools import partial
from pathlib import Path

from plugins.qcow2fs import blocks, pool, snapshots, volumes
from plugins.qcow2fs import coalesce as coalescing
from plugins.qcow2fs.chain import describe_chain
from plugins.qcow2fs.config import Qcow2fsConfig
from plugins.qcow2fs.context import PoolContext
from plugins.qcow2fs.layout import Layout
from plugins.qcow2fs.qemu_img import QemuImg
from plugins.sdk.blocks import BlockMap
from plugins.sdk.config import PluginConfig
from plugins.sdk.errors import InvalidArgument
from plugins.sdk.progress import ProgressCallback
from plugins.sdk.types import (
    Chain,
    Pool,
    PoolState,
    PoolStats,
    Snapshot,
    SnapshotKind,
    TemplateMode,
    Volume,
    VolumeFormat,
)


class Qcow2fsDriver:
    """`PrimaryStorage`, `SnapshotProvider` and `BlockMapProvider` (each promise: `plugins.sdk.protocols`)."""

    def __init__(self, config: PluginConfig) -> None:
        if not isinstance(config, Qcow2fsConfig):
            raise InvalidArgument("qcow2fs needs a Qcow2fsConfig (validate the config through the registry)")
        self._context = PoolContext(
            config=config,
            layout=Layout(config.path),
            qemu=QemuImg(config.qemu_img, timeout_seconds=config.qemu_img_timeout_seconds),
        )

    async def close(self) -> None:
        """Wait for the files a coalesce released in the background (every qemu-img run is its own process)."""
        await self._context.settle()

    async def add_pool(self, pool_id: str) -> Pool:
        return await pool.add_pool(self._context, pool_id)

    async def remove_pool(self, pool_id: str) -> None:
        await pool.remove_pool(self._context, pool_id)

    async def get_pool(self) -> Pool:
        return await pool.get_pool(self._context)

    async def enter_maintenance(self) -> Pool:
        return await pool.set_state(
            self._context, PoolState.MAINTENANCE, allowed_from={PoolState.ENABLED, PoolState.DISABLED}
        )

    async def cancel_maintenance(self) -> Pool:
        return await pool.set_state(self._context, PoolState.ENABLED, allowed_from={PoolState.MAINTENANCE})

    async def enable(self) -> Pool:
        return await pool.set_state(self._context, PoolState.ENABLED, allowed_from={PoolState.DISABLED})

    async def disable(self) -> Pool:
        return await pool.set_state(self._context, PoolState.DISABLED, allowed_from={PoolState.ENABLED})

    async def create_volume(
        self,
        volume_id: str,
        size_bytes: int,
        *,
        template: Path | None = None,
        template_mode: TemplateMode = TemplateMode.BACKING,
    ) -> Volume:
        return await volumes.create_volume(self._context, volume_id, size_bytes, template, template_mode)

    async def delete_volume(self, volume_id: str) -> None:
        await volumes.delete_volume(self._context, volume_id)

    async def get_volume(self, volume_id: str) -> Volume:
        return await self._context.describe_volume(volume_id)

    async def list_volumes(self) -> list[Volume]:
        return await volumes.list_volumes(self._context, await pool.volume_ids(self._context))

    async def resize_volume(self, volume_id: str, size_bytes: int) -> Volume:
        return await volumes.resize_volume(self._context, volume_id, size_bytes)

    async def clone_volume(self, volume_id: str, source_volume_id: str) -> Volume:
        return await volumes.clone_volume(self._context, volume_id, source_volume_id)

    async def copy_in(
        self,
        volume_id: str,
        source: Path,
        *,
        source_format: VolumeFormat | None = None,
        progress: ProgressCallback | None = None,
    ) -> Volume:
        return await volumes.copy_in(self._context, volume_id, source, source_format, progress)

    def adopts(self, source_format: VolumeFormat) -> bool:
        return source_format is VolumeFormat.QCOW2

    async def staging_directory(self) -> Path:
        staging = self._context.layout.staging
        await self._context.off_loop(partial(staging.mkdir, parents=False, exist_ok=True))
        return staging

    async def adopt(self, volume_id: str, source: Path, *, source_format: VolumeFormat) -> Volume:
        return await volumes.adopt(self._context, volume_id, source, source_format)

    async def copy_out(
        self,
        volume_id: str,
        target: Path,
        *,
        target_format: VolumeFormat = VolumeFormat.RAW,
        progress: ProgressCallback | None = None,
    ) -> None:
        await volumes.copy_out(self._context, volume_id, target, target_format, progress)

    async def stats(self) -> PoolStats:
        return await pool.pool_stats(self._context)

    async def create_snapshot(self, snapshot_id: str, volume_id: str, kind: SnapshotKind) -> Snapshot:
        return await snapshots.create_snapshot(self._context, snapshot_id, volume_id, kind)

    async def delete_snapshot(self, snapshot_id: str) -> None:
        await snapshots.delete_snapshot(self._context, snapshot_id)

    async def get_snapshot(self, snapshot_id: str) -> Snapshot:
        return await snapshots.get_snapshot(self._context, snapshot_id)

    async def copy_out_snapshot(
        self,
        volume_id: str,
        snapshot_id: str,
        target: Path,
        *,
        target_format: VolumeFormat = VolumeFormat.QCOW2,
        progress: ProgressCallback | None = None,
    ) -> None:
        await snapshots.copy_out_snapshot(
            self._context, volume_id, snapshot_id, target, target_format=target_format, progress=progress
        )

    async def list_snapshots(self, volume_id: str) -> list[Snapshot]:
        return await snapshots.list_snapshots(self._context, volume_id)

    async def revert_to_snapshot(self, volume_id: str, snapshot_id: str) -> Volume:
        return await snapshots.revert_to_snapshot(self._context, volume_id, snapshot_id)

    async def describe_chain(self, volume_id: str) -> Chain:
        await self._context.volume_record(volume_id)
        return await self._context.off_loop(describe_chain, self._context, volume_id)

    async def coalesce(self, volume_id: str) -> Chain:
        return await coalescing.coalesce(self._context, volume_id)

    async def block_map(
        self, volume_id: str, snapshot_id: str | None = None, *, since_snapshot_id: str | None = None
    ) -> BlockMap:
        return await blocks.block_map(self._context, volume_id, snapshot_id, since_snapshot_id)

    async def replace_content(self, volume_id: str, source: Path, *, source_format: VolumeFormat) -> Volume:
        return await blocks.replace_content(self._context, volume_id, source, source_format)

    def new_content(self, volume_id: str, size_bytes: int) -> AbstractAsyncContextManager[BlockMap]:
        return blocks.new_content(self._context, volume_id, size_bytes)
