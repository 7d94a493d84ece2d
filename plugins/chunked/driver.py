"""`ChunkedDriver`: the SDK's `BackupTarget` and `ImageStore` on any blob store, shared by fsbackup and s3.

A plugin supplies the store, the settings and its name (which prefixes its fault points); this class maps the
SDK's calls and types onto `ChunkedRepository` and `ImageRepository`.
"""

from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from plugins.chunked.blocks import check_blocks_match, verify_backup, write_backup_from_blocks
from plugins.chunked.images import ImageRecord, ImageRepository
from plugins.chunked.manifest import BackupSummary
from plugins.chunked.ports import BlobStore, SpaceAware
from plugins.chunked.repository import ChunkedRepository
from plugins.chunked.settings import MIB, ChunkedSettings
from plugins.sdk import faults
from plugins.sdk.blocks import BlockMap
from plugins.sdk.progress import ProgressCallback
from plugins.sdk.protocols import ContentOpener
from plugins.sdk.types import BackupRef, BackupReport, GarbageReport, ImageKind, ImageRef, VerifyReport
from schemas.agent import CHUNK_LIST_CHECKSUM

Ready = Callable[[], Awaitable[None]]
"""Checked once before the first operation (e.g. that an NFS mount is there); raises if the store is unusable."""


IMAGE_CHUNK_SIZE = 4 * MIB
"""Images are cut in chunks of at least 4 MiB: they are stored whole and read whole (no incrementals to keep small),
and a template's first copy onto a pool reads it all, for which few large chunks are much faster than many small."""


def image_settings(settings: ChunkedSettings) -> ChunkedSettings:
    """The store's settings with the image chunk size (a store configured with larger chunks keeps its own)."""
    chunk_size = max(settings.chunk_size, IMAGE_CHUNK_SIZE)
    return replace(settings, chunk_size=chunk_size, window_bytes=max(settings.window_bytes, chunk_size))


def fault_points(plugin_name: str) -> tuple[str, ...]:
    """The fault points a chunked plugin passes: after every chunk is stored, before the manifest is written."""
    return (f"{plugin_name}.backup.before_manifest", f"{plugin_name}.image.before_manifest")


def _backup_ref(manifest: BackupSummary) -> BackupRef:
    return BackupRef(
        backup_id=manifest.backup_id,
        volume_id=manifest.volume_id,
        size_bytes=manifest.size,
        parent_id=manifest.parent_id,
        created_at=manifest.created_at,
        written_bytes=manifest.written_bytes,
    )


def _image_ref(record: ImageRecord) -> ImageRef:
    return ImageRef(
        image_id=record.image_id,
        kind=ImageKind(record.kind),
        size_bytes=record.size,
        checksum=record.checksum.removeprefix("sha256:") or None,
        chunk_list_checksum=record.chunk_list.removeprefix(CHUNK_LIST_CHECKSUM) if record.chunk_list else None,
    )


class ChunkedDriver:
    """Backups and images in the chunked format on one blob store."""

    def __init__(
        self,
        *,
        plugin_name: str,
        store: BlobStore,
        settings: ChunkedSettings,
        ready: Ready | None = None,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.plugin_name = plugin_name
        self.store = store
        self.backups = ChunkedRepository(store, settings)
        self.images = ImageRepository(store, image_settings(settings))
        self._ready = ready
        self._on_close = on_close

    async def _check_ready(self) -> None:
        if self._ready is not None:
            await self._ready()
            self._ready = None  # checked once; a store that goes away later fails its own calls

    async def close(self) -> None:
        """Wait for the transit copies being deleted to give their space back; release the store's connections."""
        await self.images.transit.settle()
        if self._on_close is not None:
            await self._on_close()

    async def free_bytes(self) -> int | None:
        """Bytes the store can still take, where its blob store can tell; None where it cannot."""
        return await self.store.free_bytes() if isinstance(self.store, SpaceAware) else None

    async def backup(
        self,
        backup_id: str,
        volume_id: str,
        source: Path,
        *,
        parent_id: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> BackupRef:
        """Back up `source`; incremental against `parent_id`; the same call again returns the same backup."""
        await self._check_ready()
        result = await self.backups.backup(
            backup_id=backup_id,
            volume_id=volume_id,
            source=source,
            parent_id=parent_id,
            progress=progress,
            before_manifest=lambda: faults.point(f"{self.plugin_name}.backup.before_manifest"),
        )
        return _backup_ref(result.manifest)

    async def backup_blocks(
        self,
        backup_id: str,
        volume_id: str,
        blocks: BlockMap,
        *,
        parent_id: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> BackupReport:
        """Back up a block map; against `parent_id` only the changed extents are read (when the map knows them)."""
        await self._check_ready()
        taken = await write_backup_from_blocks(
            self.store,
            self.backups.settings,
            backup_id=backup_id,
            volume_id=volume_id,
            blocks=blocks,
            parent_id=parent_id,
            progress=progress,
            before_manifest=lambda: faults.point(f"{self.plugin_name}.backup.before_manifest"),
        )
        return BackupReport(
            ref=_backup_ref(taken.result.manifest),
            bytes_read=taken.bytes_read,
            bytes_written=taken.result.bytes_written,
            bytes_reused=taken.result.bytes_reused,
            changed_blocks=taken.changed_blocks,
            note=taken.note,
        )

    async def verify_backup(self, backup_id: str, *, progress: ProgressCallback | None = None) -> VerifyReport:
        """Re-read every chunk of the backup and check its SHA-256."""
        await self._check_ready()
        checked = await verify_backup(self.store, self.backups.settings, backup_id, progress)
        return VerifyReport(
            backup_id=backup_id,
            chunks=checked.chunks,
            bytes_checked=checked.bytes_checked,
            bad=tuple(f"chunk {bad.index} ({bad.digest}): {bad.reason}" for bad in checked.bad),
        )

    async def collect_garbage(self) -> GarbageReport:
        """Mark and sweep: free the chunks no manifest names, unless a backup is in flight (its marker is up)."""
        await self._check_ready()
        swept = await self.backups.sweep()
        return GarbageReport(freed_chunks=swept.freed_chunks, freed_bytes=swept.freed_bytes, deferred=swept.deferred)

    async def check_blocks(self, backup_id: str, blocks: BlockMap) -> int:
        """The chunks compared; `FailedPrecondition` unless the map's bytes hash to the backup's chunks."""
        await self._check_ready()
        return await check_blocks_match(self.store, backup_id, blocks)

    async def restore(self, backup_id: str, target: Path, *, progress: ProgressCallback | None = None) -> None:
        """Write the backup to `target` (a staging file: not fsynced), every chunk verified against its SHA-256."""
        await self._check_ready()
        await self.backups.restore(backup_id, target, progress, durable=False)

    async def restore_into(
        self, backup_id: str, content: ContentOpener, *, progress: ProgressCallback | None = None
    ) -> None:
        """Write the backup into a volume's fresh content (a `ContentWriter`'s places), every chunk verified."""
        await self._check_ready()
        await self.backups.restore_into(backup_id, content, progress)

    async def delete_backup(self, backup_id: str) -> None:
        """Delete the backup and free the chunks no other backup uses; a missing backup is fine."""
        await self._check_ready()
        await self.backups.delete(backup_id)

    async def list_backups(self, volume_id: str | None = None) -> list[BackupRef]:
        """Finished backups, oldest first."""
        await self._check_ready()
        return [_backup_ref(manifest) for manifest in await self.backups.backups(volume_id)]

    async def put_image(
        self,
        image_id: str,
        kind: ImageKind,
        source: Path,
        *,
        progress: ProgressCallback | None = None,
        checksum: str | None = None,
    ) -> ImageRef:
        """Store a template or ISO; `checksum` (md5/sha256..., as CloudStack registers it) is checked first."""
        await self._check_ready()
        record = await self.images.put(
            image_id,
            source,
            kind=kind.value,
            disk_format="iso" if kind is ImageKind.ISO else "qcow2",
            checksum=checksum,
            progress=progress,
            before_manifest=lambda: faults.point(f"{self.plugin_name}.image.before_manifest"),
        )
        return _image_ref(record)

    async def put_image_blocks(
        self,
        image_id: str,
        kind: ImageKind,
        blocks: BlockMap,
        *,
        progress: ProgressCallback | None = None,
        transit: bool = False,
    ) -> ImageRef:
        """Store a volume's bytes, read in place through its block map, as a raw image (or a transit copy, in its
        own corner: `plugins.chunked.transit`)."""
        await self._check_ready()
        record = await self.images.put_blocks(
            image_id,
            blocks,
            kind=kind.value,
            progress=progress,
            before_manifest=lambda: faults.point(f"{self.plugin_name}.image.before_manifest"),
            transit=transit,
        )
        return _image_ref(record)

    async def get_image_into(
        self,
        image_id: str,
        content: ContentOpener,
        *,
        checksum: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> ImageRef:
        """Write a raw image into a volume's fresh content, every chunk verified."""
        await self._check_ready()
        return _image_ref(await self.images.get_into(image_id, content, progress, checksum=checksum))

    async def get_image(self, image_id: str, target: Path, *, progress: ProgressCallback | None = None) -> ImageRef:
        """Write the image to `target`, every chunk verified."""
        await self._check_ready()
        return _image_ref(await self.images.get(image_id, target, progress))

    async def delete_image(self, image_id: str) -> None:
        """Delete the image; a missing one is fine."""
        await self._check_ready()
        await self.images.delete(image_id)

    async def list_transit_copies(self) -> dict[str, bool]:
        """The transit copies (a staged migration's) in the store, each with whether it is whole; `delete_image`
        deletes one."""
        await self._check_ready()
        return await self.images.transit.list()

    async def list_images(self) -> list[ImageRef]:
        """Every stored image."""
        await self._check_ready()
        return [_image_ref(record) for record in await self.images.list()]
