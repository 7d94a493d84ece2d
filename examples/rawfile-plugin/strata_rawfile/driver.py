"""`RawfileDriver`: `PrimaryStorage` on raw sparse files (`<directory>/<volume_id>.raw`, with a `.json` record).

Like every strata driver it is idempotent on the caller's ids: the request that made a volume is recorded before
the file is built under a temporary name and renamed into place, so a retry returns the volume or finishes it.
"""

import asyncio
import os
import re
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

from plugins.sdk import PluginConfig, faults
from plugins.sdk.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    StrataError,
    Transient,
)
from plugins.sdk.progress import ProgressCallback, no_progress
from plugins.sdk.types import Pool, PoolState, PoolStats, TemplateMode, Volume, VolumeFormat
from strata_rawfile.config import RawfileConfig
from strata_rawfile.files import adopt_file, copy_file, make_file, read_json, sparse_copy, write_json

T = TypeVar("T")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _check_id(value: str, what: str) -> str:
    if not _ID.match(value):
        raise InvalidArgument(f"{what} must be letters, digits, '.', '_' or '-'", field=what)
    return value


class RawfileDriver:
    """Raw files in one directory; no snapshots (the manifest does not claim them)."""

    def __init__(self, config: PluginConfig) -> None:
        if not isinstance(config, RawfileConfig):
            raise InvalidArgument("rawfile needs a RawfileConfig")
        self.config = config
        self.root = config.directory
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        """Nothing to release."""

    @staticmethod
    async def _thread(function: Callable[..., T], *args: object) -> T:
        return await asyncio.to_thread(function, *args)

    def _raw(self, volume_id: str) -> Path:
        return self.root / f"{_check_id(volume_id, 'volume_id')}.raw"

    def _record(self, volume_id: str) -> Path:
        return self.root / f"{_check_id(volume_id, 'volume_id')}.json"

    @property
    def _pool_record(self) -> Path:
        return self.root / ".rawfile-pool.json"

    async def add_pool(self, pool_id: str) -> Pool:
        _check_id(pool_id, "pool_id")
        if not await self._thread(self.root.is_dir):
            raise FailedPrecondition(f"{self.root} is not a directory", field="directory")
        record = await self._thread(read_json, self._pool_record)
        if record is not None and record["pool_id"] != pool_id:
            raise AlreadyExists(f"{self.root} already holds pool {record['pool_id']!r}", field="pool_id")
        if record is None:
            record = {"pool_id": pool_id, "state": PoolState.ENABLED.value}
            await self._thread(write_json, self._pool_record, record)
        return Pool(pool_id=pool_id, state=PoolState(record["state"]))

    async def remove_pool(self, pool_id: str) -> None:
        record = await self._thread(read_json, self._pool_record)
        if record is None:
            return
        if await self.list_volumes():
            raise FailedPrecondition(f"pool {pool_id!r} still holds volumes")
        await self._thread(self._pool_record.unlink, True)

    async def get_pool(self) -> Pool:
        record = await self._thread(read_json, self._pool_record)
        if record is None:
            raise NotFound(f"no pool at {self.root}")
        return Pool(pool_id=record["pool_id"], state=PoolState(record["state"]))

    async def _set_state(self, state: PoolState, allowed_from: set[PoolState]) -> Pool:
        pool = await self.get_pool()
        if pool.state is state:
            return pool
        if pool.state not in allowed_from:
            raise FailedPrecondition(f"the pool is {pool.state.value}; it cannot become {state.value}")
        await self._thread(write_json, self._pool_record, {"pool_id": pool.pool_id, "state": state.value})
        return Pool(pool_id=pool.pool_id, state=state)

    async def enter_maintenance(self) -> Pool:
        return await self._set_state(PoolState.MAINTENANCE, {PoolState.ENABLED, PoolState.DISABLED})

    async def cancel_maintenance(self) -> Pool:
        return await self._set_state(PoolState.ENABLED, {PoolState.MAINTENANCE})

    async def enable(self) -> Pool:
        return await self._set_state(PoolState.ENABLED, {PoolState.DISABLED})

    async def disable(self) -> Pool:
        return await self._set_state(PoolState.DISABLED, {PoolState.ENABLED})

    async def _require(self, *, placing: bool) -> None:
        state = (await self.get_pool()).state
        if state is PoolState.MAINTENANCE or (placing and state is PoolState.DISABLED):
            raise FailedPrecondition(f"the pool is {state.value}")

    async def _make(
        self, volume_id: str, request: dict[str, object], build: Callable[[Path], Awaitable[None]]
    ) -> Volume:
        async with self._lock:
            record = await self._thread(read_json, self._record(volume_id))
            if record is not None and record["request"] != request:
                raise AlreadyExists(f"volume {volume_id!r} exists for another request", field="volume_id")
            if record is not None and record["state"] == "ready":
                return await self.get_volume(volume_id)
            if record is None:
                await self._require(placing=True)
                record = {"request": request, "state": "creating"}
                await self._thread(write_json, self._record(volume_id), record)
            temporary = self._raw(volume_id).with_suffix(".partial")
            try:
                await build(temporary)
            except (Transient, Aborted):
                raise  # the record stays for a retry of the same request
            except StrataError:
                # Failed for good: nothing is kept, so the id is free for a corrected request.
                await self._thread(temporary.unlink, True)
                await self._thread(self._record(volume_id).unlink, True)
                raise
            await faults.point("rawfile.volume.before_publish")
            await self._thread(temporary.replace, self._raw(volume_id))
            await self._thread(write_json, self._record(volume_id), {**record, "state": "ready"})
        return await self.get_volume(volume_id)

    async def create_volume(
        self,
        volume_id: str,
        size_bytes: int,
        *,
        template: Path | None = None,
        template_mode: TemplateMode = TemplateMode.BACKING,
    ) -> Volume:
        if size_bytes <= 0 or size_bytes % 512:
            raise InvalidArgument("size_bytes must be a positive multiple of 512", field="size_bytes")
        if template is None:

            async def build(target: Path) -> None:
                await self._thread(make_file, target, size_bytes, self.config.preallocate)

            return await self._make(volume_id, {"size_bytes": size_bytes}, build)
        # Raw files have no backing files: a template is always copied, whatever mode was asked for.
        template_size = (await self._thread(template.stat)).st_size
        if size_bytes < template_size:
            raise InvalidArgument("size_bytes is smaller than the template", field="size_bytes")

        async def build_copy(target: Path) -> None:
            await self._thread(sparse_copy, template, target, no_progress)
            await self._thread(os.truncate, target, size_bytes)

        return await self._make(volume_id, {"size_bytes": size_bytes, "template": str(template)}, build_copy)

    async def delete_volume(self, volume_id: str) -> None:
        async with self._lock:
            if not await self._thread(self._record(volume_id).exists):
                return
            await self._require(placing=False)
            await self._thread(self._raw(volume_id).unlink, True)
            await self._thread(self._record(volume_id).unlink, True)

    async def get_volume(self, volume_id: str) -> Volume:
        record = await self._thread(read_json, self._record(volume_id))
        if record is None or record["state"] != "ready":
            raise NotFound(f"volume {volume_id!r} does not exist", field="volume_id")
        stat = await self._thread(self._raw(volume_id).stat)
        return Volume(
            volume_id=volume_id,
            size_bytes=stat.st_size,
            allocated_bytes=stat.st_blocks * 512,
            format=VolumeFormat.RAW,
            path=str(self._raw(volume_id)),
        )

    async def list_volumes(self) -> list[Volume]:
        names = await self._thread(lambda: sorted(p.stem for p in self.root.glob("*.json") if _ID.match(p.stem)))
        volumes = []
        for name in names:
            try:
                volumes.append(await self.get_volume(name))
            except NotFound:
                continue
        return volumes

    async def resize_volume(self, volume_id: str, size_bytes: int) -> Volume:
        volume = await self.get_volume(volume_id)
        if size_bytes < volume.size_bytes:
            raise InvalidArgument("volumes only grow", field="size_bytes")
        await self._require(placing=False)
        await self._thread(os.truncate, self._raw(volume_id), size_bytes)
        return await self.get_volume(volume_id)

    async def clone_volume(self, volume_id: str, source_volume_id: str) -> Volume:
        source = self._raw(source_volume_id)
        await self.get_volume(source_volume_id)

        async def build(target: Path) -> None:
            await self._thread(sparse_copy, source, target, no_progress)

        return await self._make(volume_id, {"clone_of": source_volume_id}, build)

    async def copy_in(
        self,
        volume_id: str,
        source: Path,
        *,
        source_format: VolumeFormat | None = None,
        progress: ProgressCallback | None = None,
    ) -> Volume:
        if source_format not in (None, VolumeFormat.RAW):
            raise InvalidArgument("rawfile copies raw images only", field="source_format")
        if not await self._thread(source.exists):
            raise NotFound(f"{source} does not exist", field="source")

        async def build(target: Path) -> None:
            await copy_file(source, target, progress or no_progress)

        return await self._make(volume_id, {"copy_in": str(source)}, build)

    def adopts(self, source_format: VolumeFormat) -> bool:
        return source_format is VolumeFormat.RAW

    async def staging_directory(self) -> Path:
        staging = self.root / ".staging"
        await self._thread(partial(staging.mkdir, exist_ok=True))
        return staging

    async def adopt(self, volume_id: str, source: Path, *, source_format: VolumeFormat) -> Volume:
        staging = self.root / ".staging"
        if source_format is not VolumeFormat.RAW:
            raise InvalidArgument("rawfile adopts raw files only", field="source_format")
        if not source.is_absolute() or source.parent == staging or staging not in source.parents:
            raise InvalidArgument(f"{source} is not a file staged under {staging}/<directory>/", field="source")

        async def build(target: Path) -> None:
            if not await self._thread(source.is_file):
                raise NotFound(f"staged file {source} does not exist", field="source")
            await self._thread(adopt_file, source, target)

        return await self._make(volume_id, {"adopt": str(source)}, build)

    async def copy_out(
        self,
        volume_id: str,
        target: Path,
        *,
        target_format: VolumeFormat = VolumeFormat.RAW,
        progress: ProgressCallback | None = None,
    ) -> None:
        if target_format is not VolumeFormat.RAW:
            raise InvalidArgument("rawfile copies raw images only", field="target_format")
        await self.get_volume(volume_id)
        partial = target.with_name(f".{target.name}.partial")
        try:
            await copy_file(self._raw(volume_id), partial, progress or no_progress)
            await self._thread(partial.replace, target)
        except BaseException:
            # Failed or cancelled (a deadline), even just before the rename: no partial file stays.
            await asyncio.shield(self._thread(partial.unlink, True))
            raise

    async def stats(self) -> PoolStats:
        await self.get_pool()
        fs = await self._thread(os.statvfs, self.root)
        capacity = fs.f_blocks * fs.f_frsize
        volumes = await self.list_volumes()
        return PoolStats(
            capacity_bytes=capacity,
            used_bytes=capacity - fs.f_bavail * fs.f_frsize,
            allocated_bytes=sum(volume.size_bytes for volume in volumes),
            volumes=len(volumes),
        )
