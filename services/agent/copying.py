"""The agent's copies between a pool and a zone-wide store: the data plane of templates, exports and migrations.

A copy to a store: the pool's plugin writes the volume to a staging file on this host (`copy_out`), the store's
plugin stores it (`put_image`, manifest written last). A copy from a store: the store's plugin writes the object to
a staging file, every chunk verified (`get_image`), the pool's plugin makes the volume from it (`copy_in`). Each
half reports progress as `CopyProgressed` events; the whole copy has the command's deadline. A copy that fails or
passes its deadline leaves no staging file and no object in the store (chunks written before the manifest are
garbage the store's sweep frees); on the pool, the plugin's own record lets the same command again finish it.
Staging files live in a fresh directory of the agent's staging area (`services.agent.staging`).

A raw copy skips the staging file where the plugins allow: to a store that takes block maps (`BlockImageStore`),
a pool that gives one (`BlockMapProvider`) has its volume's bytes read where they lie; from such a store, a pool that
lays out a volume's content in place (`ContentWriter`) has the image's bytes written straight into it. A staged
migration copies raw for that reason.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from uuid import UUID

from bus.ports import UnitOfWork
from plugins.sdk.blocks import BlockMap
from plugins.sdk.progress import ProgressCallback
from plugins.sdk.protocols import (
    BlockImageStore,
    BlockMapProvider,
    ContentWriter,
    FileAdopter,
    PrimaryStorage,
    SnapshotCopier,
)
from plugins.sdk.types import ImageKind, ImageRef, Volume, VolumeFormat
from schemas import Envelope, Event
from schemas.agent import (
    CHUNK_LIST_CHECKSUM,
    BaseCopy,
    CopyFormat,
    CopyProgressed,
    CopyStage,
    CopyVolumeFromStore,
    CopyVolumeToStore,
    StoreAccess,
    VolumeCopiedFromStore,
    VolumeCopiedToStore,
    VolumeCopyFromStoreFailed,
    VolumeCopyToStoreFailed,
)
from schemas.errors import DeadlineExceeded, FailedPrecondition, NotFound, Unimplemented
from services.agent.answering import Agent, volume_resource
from services.agent.progress import progress_events

BASE_COPY_DEADLINE = 3 * 3600.0
"""Seconds a template's first copy onto a pool may take when its command gives no deadline."""


@asynccontextmanager
async def deadline(seconds: float, what: str) -> AsyncIterator[None]:
    """Give the block `seconds` (inside its command's own deadline, which `Agent.run` keeps); past them it is
    cancelled (its plugin calls stop their tools) and `DeadlineExceeded`, as a command past its deadline is."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise DeadlineExceeded(
            f"{what} did not finish within its deadline of {seconds:g} s; nothing of it was kept"
        ) from None


def _progress(
    agent: Agent, envelope: Envelope, command: CopyVolumeToStore | CopyVolumeFromStore, stage: CopyStage
) -> AbstractAsyncContextManager[ProgressCallback]:
    def make(done: int, total: int) -> Event:
        return CopyProgressed(
            pool_id=command.pool_id,
            volume_id=command.volume_id,
            object_id=command.object_id,
            host=agent.host,
            stage=stage,
            done_bytes=done,
            total_bytes=total,
        )

    return progress_events(agent.units, envelope, make, producer=agent.producer)


async def copy_volume_to_store(command: CopyVolumeToStore, envelope: Envelope, uow: UnitOfWork, agent: Agent) -> None:
    """Write the volume's content into the store as `object_id`."""

    async def work() -> Event:
        primary = await agent.drivers.primary(uow.connection, command.pool_id)
        store = await agent.drivers.store(command.store.store_id, command.store.plugin, command.store.config)
        what = f"the copy of volume {command.volume_id} to store {command.store.store_id}"
        if (
            command.format is CopyFormat.RAW
            and command.snapshot_id is None
            and isinstance(primary, BlockMapProvider)
            and isinstance(store, BlockImageStore)
        ):
            # The volume's bytes read where they lie, straight into the store: no staging file.
            async with deadline(command.deadline_seconds, what):
                blocks = await primary.block_map(str(command.volume_id))
                async with _progress(agent, envelope, command, CopyStage.POOL) as bar:
                    bar(blocks.size_bytes, blocks.size_bytes)  # nothing to stage: the store reads the pool's files
                async with _progress(agent, envelope, command, CopyStage.STORE) as bar:
                    stored = await store.put_image_blocks(
                        command.object_id,
                        ImageKind.TEMPLATE,
                        blocks,
                        progress=bar,
                        transit=command.transit,
                    )
            return _copied_to_store(command, agent, stored)
        async with deadline(command.deadline_seconds, what), agent.staging_area.directory() as staging:
            staged = staging / f"{command.object_id}.{command.format.value}"
            report: ProgressCallback
            async with _progress(agent, envelope, command, CopyStage.POOL) as report:
                if command.snapshot_id is None:
                    await primary.copy_out(
                        str(command.volume_id),
                        staged,
                        target_format=VolumeFormat(command.format.value),
                        progress=report,
                    )
                else:
                    if not isinstance(primary, SnapshotCopier):
                        raise Unimplemented(
                            f"the plugin of pool {command.pool_id} cannot copy a snapshot out: make the template from "
                            "a volume reverted to it instead",
                            field="snapshot_id",
                        )
                    await primary.copy_out_snapshot(
                        str(command.volume_id),
                        str(command.snapshot_id),
                        staged,
                        target_format=VolumeFormat(command.format.value),
                        progress=report,
                    )
            async with _progress(agent, envelope, command, CopyStage.STORE) as report:
                stored = await store.put_image(command.object_id, ImageKind.TEMPLATE, staged, progress=report)
        return _copied_to_store(command, agent, stored)

    await agent.run(
        uow,
        envelope,
        work,
        lambda error: VolumeCopyToStoreFailed(
            pool_id=command.pool_id,
            volume_id=command.volume_id,
            store_id=command.store.store_id,
            object_id=command.object_id,
            error=error,
        ),
        resources=[volume_resource(command.volume_id)],
    )


def _copied_to_store(command: CopyVolumeToStore, agent: Agent, stored: ImageRef) -> Event:
    return VolumeCopiedToStore(
        pool_id=command.pool_id,
        volume_id=command.volume_id,
        store_id=command.store.store_id,
        object_id=command.object_id,
        host=agent.host,
        size_bytes=stored.size_bytes,
        checksum=_names(stored)[0],
    )


def _names(stored: ImageRef) -> list[str]:
    """What names a stored object's bytes (`schemas.agent.STORED_CHECKSUM`), best first: its SHA-256, and the
    digest of its chunk list where the store gives one (all a transit copy may have). A store that gives neither
    breaks the `ImageStore` contract."""
    names = [f"sha256:{stored.checksum}"] if stored.checksum else []
    names += [f"{CHUNK_LIST_CHECKSUM}{stored.chunk_list_checksum}"] if stored.chunk_list_checksum else []
    if not names:
        raise FailedPrecondition(f"the store gave no checksum of object {stored.image_id}", field="checksum")
    return names


async def copy_from_store(
    agent: Agent,
    primary: PrimaryStorage,
    envelope: Envelope,
    *,
    pool_id: UUID,
    volume_id: UUID,
    access: StoreAccess,
    object_id: str,
    source_format: CopyFormat | None,
    checksum: str | None,
    deadline_seconds: float,
) -> Volume:
    """Make `volume_id` on the pool from the store's object (fetched to a staging file, its checksum checked)."""
    store = await agent.drivers.store(access.store_id, access.plugin, access.config)

    def make(stage: CopyStage, done: int, total: int) -> Event:
        return CopyProgressed(
            pool_id=pool_id,
            volume_id=volume_id,
            object_id=object_id,
            host=agent.host,
            stage=stage,
            done_bytes=done,
            total_bytes=total,
        )

    what = f"the copy of {object_id} from store {access.store_id}"
    volume_format = VolumeFormat(source_format.value) if source_format else None
    if volume_format is VolumeFormat.RAW and isinstance(primary, ContentWriter) and isinstance(store, BlockImageStore):
        # The image's bytes straight into the new volume's places: no staging file, no second copy.
        writer: ContentWriter = primary

        @asynccontextmanager
        async def new_volume(size_bytes: int) -> AsyncIterator[BlockMap]:
            await primary.create_volume(str(volume_id), size_bytes)  # the same again finds it made
            async with writer.new_content(str(volume_id), size_bytes) as places:
                yield places

        async with (
            deadline(deadline_seconds, what),
            progress_events(agent.units, envelope, partial(make, CopyStage.STORE), producer=agent.producer) as bar,
        ):
            fetched = await store.get_image_into(object_id, new_volume, checksum=checksum, progress=bar)
        async with progress_events(
            agent.units, envelope, partial(make, CopyStage.POOL), producer=agent.producer
        ) as bar:
            bar(fetched.size_bytes, fetched.size_bytes)  # the pool's half was done in the same pass
        return await primary.get_volume(str(volume_id))
    adopter = adopter_of(primary, volume_format)
    root = await adopter.staging_directory() if adopter is not None else None
    async with deadline(deadline_seconds, what), agent.staging_area.directory(root) as staging:
        staged = staging / object_id
        report: ProgressCallback
        async with progress_events(
            agent.units, envelope, partial(make, CopyStage.STORE), producer=agent.producer
        ) as report:
            fetched = await store.get_image(object_id, staged, progress=report)
        if checksum is not None and checksum not in _names(fetched):
            raise FailedPrecondition(
                f"object {object_id} has checksum {_names(fetched)[0]}, not the expected {checksum}",
                field="checksum",
            )
        async with progress_events(
            agent.units, envelope, partial(make, CopyStage.POOL), producer=agent.producer
        ) as report:
            if adopter is not None and volume_format is not None:
                volume = await adopter.adopt(str(volume_id), staged, source_format=volume_format)
                report(fetched.size_bytes, fetched.size_bytes)
                return volume
            return await primary.copy_in(str(volume_id), staged, source_format=volume_format, progress=report)


def adopter_of(primary: PrimaryStorage, volume_format: VolumeFormat | None) -> FileAdopter | None:
    """The pool's plugin, if it can take a staged file of this format as a volume as it is (no second copy)."""
    if volume_format is not None and isinstance(primary, FileAdopter) and primary.adopts(volume_format):
        return primary
    return None


async def copy_volume_from_store(
    command: CopyVolumeFromStore, envelope: Envelope, uow: UnitOfWork, agent: Agent
) -> None:
    """Make the volume on the pool from the store's object `object_id`, its checksum checked when one is given."""

    async def work() -> Event:
        primary = await agent.drivers.primary(uow.connection, command.pool_id)
        volume = await copy_from_store(
            agent,
            primary,
            envelope,
            pool_id=command.pool_id,
            volume_id=command.volume_id,
            access=command.store,
            object_id=command.object_id,
            source_format=command.format,
            checksum=command.checksum,
            deadline_seconds=command.deadline_seconds,
        )
        return VolumeCopiedFromStore(
            pool_id=command.pool_id,
            volume_id=command.volume_id,
            store_id=command.store.store_id,
            object_id=command.object_id,
            host=agent.host,
            size_bytes=volume.size_bytes,
            locator=volume.path,
        )

    await agent.run(
        uow,
        envelope,
        work,
        lambda error: VolumeCopyFromStoreFailed(
            pool_id=command.pool_id,
            volume_id=command.volume_id,
            store_id=command.store.store_id,
            object_id=command.object_id,
            error=error,
        ),
        resources=[volume_resource(command.volume_id)],
    )


_base_locks: dict[UUID, asyncio.Lock] = {}


async def ensure_base_copy(
    agent: Agent,
    primary: PrimaryStorage,
    envelope: Envelope,
    pool_id: UUID,
    base: BaseCopy,
    *,
    deadline_seconds: float = BASE_COPY_DEADLINE,
) -> Volume:
    """The pool's base copy of a template, made from the image store if the pool lacks it (one copy at a time per
    base: volumes made together from a new template wait for the first to fetch it)."""
    lock = _base_locks.setdefault(base.volume_id, asyncio.Lock())
    async with lock:
        try:
            return await primary.get_volume(str(base.volume_id))
        except NotFound:
            pass  # not on the pool (never made, or deleted behind the record's back): made again
        return await copy_from_store(
            agent,
            primary,
            envelope,
            pool_id=pool_id,
            volume_id=base.volume_id,
            access=base.store,
            object_id=base.object_id,
            source_format=base.format,
            checksum=base.checksum,
            deadline_seconds=deadline_seconds,
        )
