"""The four roles a driver plays, as async protocols. Every mutating call is idempotent on the caller's id.

A driver is what `Plugin.open(config)` returns for one pool (or store); it implements the protocol of each role its
manifest claims (one object may implement several). The rules every method follows:

- The same call again (same id, same arguments) returns the same result and changes nothing more, also after a
  crash midway: it finishes or redoes what the first call left. A call that reuses an id for something different
  raises `AlreadyExists`.
- Deletes of something already gone succeed (they are retried).
- Errors are `plugins.sdk.errors` classes; a driver translates its tools' and libraries' errors into them.
- Nothing blocks the event loop: tools run as asyncio subprocesses, file I/O in threads.
"""

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Protocol, runtime_checkable

from plugins.sdk.blocks import BlockMap
from plugins.sdk.progress import ProgressCallback
from plugins.sdk.types import (
    BackupRef,
    BackupReport,
    Chain,
    GarbageReport,
    ImageKind,
    ImageRef,
    Pool,
    PoolStats,
    Snapshot,
    SnapshotKind,
    TemplateMode,
    VerifyReport,
    Volume,
    VolumeFormat,
)


@runtime_checkable
class Driver(Protocol):
    """What every driver has, whatever its roles."""

    async def close(self) -> None:
        """Release connections and background work; the driver is not used afterwards."""
        ...


@runtime_checkable
class PrimaryStorage(Driver, Protocol):
    """Volumes that virtual machines run on, in one pool."""

    async def add_pool(self, pool_id: str) -> Pool:
        """Take the configured storage into use as pool `pool_id` (enabled); `AlreadyExists` if another pool has it."""
        ...

    async def remove_pool(self, pool_id: str) -> None:
        """Stop using the storage; `FailedPrecondition` while it still holds volumes."""
        ...

    async def get_pool(self) -> Pool:
        """The pool and its state; `NotFound` before `add_pool`."""
        ...

    async def enter_maintenance(self) -> Pool:
        """Refuse every volume change until `cancel_maintenance` (for work on the storage itself)."""
        ...

    async def cancel_maintenance(self) -> Pool:
        """Leave maintenance; the pool is enabled again."""
        ...

    async def enable(self) -> Pool:
        """Allow new volumes on the pool."""
        ...

    async def disable(self) -> Pool:
        """Keep existing volumes working but place no new one."""
        ...

    async def create_volume(
        self,
        volume_id: str,
        size_bytes: int,
        *,
        template: Path | None = None,
        template_mode: TemplateMode = TemplateMode.BACKING,
    ) -> Volume:
        """Create an empty (sparse) volume, or one from `template` (as its backing file or as a full copy)."""
        ...

    async def delete_volume(self, volume_id: str) -> None:
        """Delete the volume and its snapshots; `FailedPrecondition` if other volumes are built on it."""
        ...

    async def get_volume(self, volume_id: str) -> Volume:
        """The volume; `NotFound` if it does not exist."""
        ...

    async def list_volumes(self) -> list[Volume]:
        """Every volume of the pool."""
        ...

    async def resize_volume(self, volume_id: str, size_bytes: int) -> Volume:
        """Grow the volume to `size_bytes` (the same size again is a no-op); shrinking is `InvalidArgument`."""
        ...

    async def clone_volume(self, volume_id: str, source_volume_id: str) -> Volume:
        """Create `volume_id` as a standalone copy of the source volume's current content."""
        ...

    async def copy_in(
        self,
        volume_id: str,
        source: Path,
        *,
        source_format: VolumeFormat | None = None,
        progress: ProgressCallback | None = None,
    ) -> Volume:
        """Create `volume_id` from the bytes of a file (a download, a restored backup), reporting progress."""
        ...

    async def copy_out(
        self,
        volume_id: str,
        target: Path,
        *,
        target_format: VolumeFormat = VolumeFormat.RAW,
        progress: ProgressCallback | None = None,
    ) -> None:
        """Write the volume's current content to `target` (replaced atomically), reporting progress."""
        ...

    async def stats(self) -> PoolStats:
        """Capacity, use and, where the storage can tell, IOPS."""
        ...


@runtime_checkable
class SnapshotProvider(Driver, Protocol):
    """Snapshots of the volumes of a primary storage driver."""

    async def create_snapshot(self, snapshot_id: str, volume_id: str, kind: SnapshotKind) -> Snapshot:
        """Take a full or delta snapshot of the volume's current content."""
        ...

    async def delete_snapshot(self, snapshot_id: str) -> None:
        """Forget the snapshot; its data stays while newer layers need it (coalesce reclaims it)."""
        ...

    async def get_snapshot(self, snapshot_id: str) -> Snapshot:
        """The snapshot; `NotFound` if it does not exist."""
        ...

    async def list_snapshots(self, volume_id: str) -> list[Snapshot]:
        """The volume's live snapshots, oldest first."""
        ...

    async def revert_to_snapshot(self, volume_id: str, snapshot_id: str) -> Volume:
        """Make the volume's content the snapshot's again, in place; what was written since is discarded."""
        ...

    async def describe_chain(self, volume_id: str) -> Chain:
        """The volume's layers from the active one down to its base."""
        ...

    async def coalesce(self, volume_id: str) -> Chain:
        """Fold every layer that no live snapshot holds into the layer above it, where that is safe; return the chain.

        Safe means the layer has exactly one child (no other branch reads it) and there is room for the merge
        (measured first, else `ResourceExhausted`). A call after a crash finishes the merge it finds half done.
        """
        ...


@runtime_checkable
class BackupTarget(Driver, Protocol):
    """Backups of volumes, full or incremental, each described by a manifest written last."""

    async def backup(
        self,
        backup_id: str,
        volume_id: str,
        source: Path,
        *,
        parent_id: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> BackupRef:
        """Back up the raw image at `source`, storing only what changed since `parent_id` when one is given."""
        ...

    async def restore(self, backup_id: str, target: Path, *, progress: ProgressCallback | None = None) -> None:
        """Write the backup's bytes to `target`, verifying them; `NotFound` if there is no such backup. `target` is
        a staging file the framework then copies into the volume (and makes durable there): it need not be fsynced."""
        ...

    async def delete_backup(self, backup_id: str) -> None:
        """Delete the backup and free what no other backup uses."""
        ...

    async def list_backups(self, volume_id: str | None = None) -> list[BackupRef]:
        """Finished backups, of one volume or all, oldest first."""
        ...


@runtime_checkable
class BlockMapProvider(Driver, Protocol):
    """Primary storage that can say where a snapshot's bytes lie and which changed since an older snapshot."""

    async def block_map(
        self, volume_id: str, snapshot_id: str | None = None, *, since_snapshot_id: str | None = None
    ) -> BlockMap:
        """The snapshot's (or, without one, the volume's current) bytes as extents readable in place.

        With `since_snapshot_id`, the extents written after that snapshot are marked changed; when the provider
        cannot tell (the older snapshot's data is merged away, or it is not an ancestor), `changes_known` is False.
        """
        ...

    async def replace_content(self, volume_id: str, source: Path, *, source_format: VolumeFormat) -> Volume:
        """Make the file's bytes the volume's content in one switch; its snapshots keep theirs (a restore in place)."""
        ...


@runtime_checkable
class BlockBackupTarget(BackupTarget, Protocol):
    """A backup target that reads block maps, and checks data against its hashes."""

    async def backup_blocks(
        self,
        backup_id: str,
        volume_id: str,
        blocks: BlockMap,
        *,
        parent_id: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> BackupReport:
        """Back up the map's bytes; against `parent_id`, chunks outside changed extents are taken unread."""
        ...

    async def verify_backup(self, backup_id: str, *, progress: ProgressCallback | None = None) -> VerifyReport:
        """Read every chunk of the backup and check its hash; the report lists the bad ones."""
        ...

    async def collect_garbage(self) -> GarbageReport:
        """Free the stored data no backup references; free nothing (`deferred`) while a backup is being written."""
        ...

    async def check_blocks(self, backup_id: str, blocks: BlockMap) -> int:
        """Check that the map's bytes are the backup's (restored data, before anyone uses it), returning the chunks
        compared; `FailedPrecondition` at the first that differs."""
        ...


ContentOpener = Callable[[int], AbstractAsyncContextManager[BlockMap]]
"""`open(size_bytes)`: a volume's fresh content of that size as places to write, switched in on a clean exit (a
`ContentWriter.new_content` with the volume given)."""


@runtime_checkable
class ContentWriter(Protocol):
    """Primary storage that can lay a volume's new content out in its own files for a writer to fill in place: a
    restore then writes each byte once, where `replace_content` takes a staging file and copies it (qcow2fs: a layer
    with every cluster's place allocated). Optional: without it the framework stages and calls `replace_content`."""

    def new_content(self, volume_id: str, size_bytes: int) -> AbstractAsyncContextManager[BlockMap]:
        """A fresh content of `size_bytes` for `volume_id` that reads as zeros until written, as a map whose every
        extent is a place in a file. On a clean exit the content is made durable and becomes the volume's in one
        switch (its snapshots keep theirs); on an error it is discarded and the volume is left as it was."""
        ...


@runtime_checkable
class PlacedRestorer(Protocol):
    """A backup target that can restore straight into a `ContentWriter`'s places (no staging file)."""

    async def restore_into(
        self, backup_id: str, content: ContentOpener, *, progress: ProgressCallback | None = None
    ) -> None:
        """Open `content` at the backup's size and write the backup's bytes into it, every chunk verified first;
        `NotFound` if there is no such backup (the content is then never opened)."""
        ...


@runtime_checkable
class ImageStore(Driver, Protocol):
    """Templates and ISOs."""

    async def put_image(
        self, image_id: str, kind: ImageKind, source: Path, *, progress: ProgressCallback | None = None
    ) -> ImageRef:
        """Store the file at `source` as the image `image_id`."""
        ...

    async def get_image(self, image_id: str, target: Path, *, progress: ProgressCallback | None = None) -> ImageRef:
        """Write the image's bytes to `target`, verifying them; `NotFound` if there is no such image."""
        ...

    async def delete_image(self, image_id: str) -> None:
        """Delete the image."""
        ...

    async def list_images(self) -> list[ImageRef]:
        """Every image in the store."""
        ...


@runtime_checkable
class BlockImageStore(Protocol):
    """An image store that takes a volume's bytes straight from its block map and gives a raw image straight into
    a volume's fresh content: a copy between pools through it (a staged migration) then has no staging file on
    either host. Optional: without it the framework stages files (`put_image`, `get_image`)."""

    async def put_image_blocks(
        self,
        image_id: str,
        kind: ImageKind,
        blocks: BlockMap,
        *,
        progress: ProgressCallback | None = None,
        transit: bool = False,
    ) -> ImageRef:
        """Store the map's bytes (read in place) as the raw image `image_id`; the same image again is returned.

        With `transit=True` (a copy that only `get_image_into` reads back, then `delete_image` deletes: a staged
        migration's) the store may skip the image's SHA-256 (`ImageRef.checksum` None) and name it by
        `chunk_list_checksum` instead, a digest of the list of verified pieces it keeps; it may keep the copy apart
        from the images and need not make it durable (its reader verifies every piece, and a copy lost in a crash
        only fails that reader). `list_images` need not show it."""
        ...

    async def get_image_into(
        self,
        image_id: str,
        content: ContentOpener,
        *,
        checksum: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> ImageRef:
        """Open `content` at the image's size and write its bytes into it as they are (the caller knows the image is
        raw), every piece verified first. Nothing is opened when there is no such image (`NotFound`) or when
        `checksum` (`sha256:<hex>`, or `chunklist-sha256:<hex>` from `ImageRef.chunk_list_checksum`, which also
        finds a transit copy) is given and is not the image's (`FailedPrecondition`, field `checksum`)."""
        ...


@runtime_checkable
class SnapshotCopier(Protocol):
    """A snapshot provider that can write a snapshot's content (as the volume was when it was taken) to a file: a
    template made from a snapshot. Optional: the framework refuses such a template for a plugin without it."""

    async def copy_out_snapshot(
        self,
        volume_id: str,
        snapshot_id: str,
        target: Path,
        *,
        target_format: VolumeFormat = VolumeFormat.QCOW2,
        progress: ProgressCallback | None = None,
    ) -> None:
        """Write the snapshot's content to `target` (complete, or nothing: a temporary name renamed at the end)."""
        ...


@runtime_checkable
class SpaceReporter(Protocol):
    """A store that may tell how much more it can hold (a directory can; an object store usually cannot)."""

    async def free_bytes(self) -> int | None:
        """Bytes the store can still take, or None where it cannot tell."""
        ...


@runtime_checkable
class FileAdopter(Protocol):
    """A primary storage plugin on a filesystem that can make a volume of a staged file by taking it (a rename, no
    copy). A copy from a store (a template's base copy, a staged migration) is then written on the pool's own
    filesystem and adopted, where `copy_in` would write every byte a second time. Optional: without it the framework
    stages the file elsewhere and calls `copy_in`."""

    def adopts(self, source_format: VolumeFormat) -> bool:
        """Whether a file of this format can become a volume as it is (qcow2fs: qcow2)."""
        ...

    async def staging_directory(self) -> Path:
        """A directory on the pool's filesystem for files to adopt (made if missing; nothing else lives there)."""
        ...

    async def adopt(self, volume_id: str, source: Path, *, source_format: VolumeFormat) -> Volume:
        """Create `volume_id` by taking `source`, a file under `staging_directory()`, once it is checked (its format,
        no backing or data file); the file is gone afterwards. Idempotent on the (volume_id, source) pair as
        `copy_in` is; a refused file is `InvalidArgument` and left where it was."""
        ...
