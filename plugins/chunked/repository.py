"""`ChunkedRepository`: the chunked format's operations on one blob store, as a plugin uses them."""

from collections.abc import Callable
from pathlib import Path

from plugins.chunked.digests import WholeDigest
from plugins.chunked.manifest import BackupManifest, BackupSummary
from plugins.chunked.ports import BlobStore
from plugins.chunked.reading import RestoreResult, list_summaries, load_manifest, restore_backup, restore_to_blocks
from plugins.chunked.settings import ChunkedSettings, ProgressCallback
from plugins.chunked.sweep import SweepResult, delete_backup, sweep
from plugins.chunked.writer import BackupResult, BeforeManifest, Labels, write_backup
from plugins.sdk.protocols import ContentOpener


class ChunkedRepository:
    """Backups of volumes (and images) as chunked manifests in one `BlobStore`."""

    def __init__(self, store: BlobStore, settings: ChunkedSettings | None = None) -> None:
        self.store = store
        self.settings = settings or ChunkedSettings()

    async def backup(
        self,
        *,
        backup_id: str,
        volume_id: str,
        source: Path,
        parent_id: str | None = None,
        labels: Labels | None = None,
        progress: ProgressCallback | None = None,
        before_manifest: BeforeManifest | None = None,
        whole: WholeDigest | None = None,
    ) -> BackupResult:
        """Back up `source`; incremental against `parent_id` when given; the same call again returns the same backup."""
        return await write_backup(
            self.store,
            self.settings,
            backup_id=backup_id,
            volume_id=volume_id,
            source=source,
            parent_id=parent_id,
            labels=labels,
            progress=progress,
            before_manifest=before_manifest,
            whole=whole,
        )

    async def restore(
        self, backup_id: str, target: Path, progress: ProgressCallback | None = None, *, durable: bool = True
    ) -> RestoreResult:
        """Write the backup to `target`, verifying every chunk; raises `ChunkCorrupted` rather than restore bad data;
        `durable=False` skips the final fsync (a staging file)."""
        return await restore_backup(
            self.store, self.settings, backup_id=backup_id, target=target, progress=progress, durable=durable
        )

    async def restore_into(
        self,
        backup_id: str,
        content: ContentOpener,
        progress: ProgressCallback | None = None,
        *,
        before_open: Callable[[BackupManifest], None] | None = None,
    ) -> RestoreResult:
        """Write the backup into a volume's fresh content opened at its size, verifying every chunk first;
        `before_open` may refuse the backup (by raising) before the content is opened."""
        return await restore_to_blocks(
            self.store, self.settings, backup_id=backup_id, content=content, progress=progress, before_open=before_open
        )

    async def delete(self, backup_id: str) -> tuple[bool, SweepResult]:
        """Delete the backup and free the chunks no other backup uses; says whether it existed."""
        return await delete_backup(self.store, self.settings, backup_id)

    async def sweep(self) -> SweepResult:
        """Free unreferenced chunks (left by deletes that were deferred or by crashed backups)."""
        return await sweep(self.store, self.settings)

    async def manifest(self, backup_id: str) -> BackupManifest:
        """The manifest of one backup; `NotFound` if it does not exist."""
        return await load_manifest(self.store, backup_id)

    async def backups(self, volume_id: str | None = None) -> list[BackupSummary]:
        """Finished backups, of one volume or all, oldest first (without their chunk lists)."""
        return await list_summaries(self.store, volume_id)
