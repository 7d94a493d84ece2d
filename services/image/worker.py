"""The image service's worker: downloads images into their stores and deletes them, outside any transaction.

A download is claimed in a short transaction (DOWNLOAD_IN_PROGRESS, a lease), run with no transaction open (the
HTTP fetch into a staging file, the checks, the store's `put_image`), and its outcome recorded in a second one with
its event. The worker extends the lease while it holds the copy, whatever step it is at; a worker that dies leaves a
lease that runs out, and any worker then takes the copy again and resumes the staging file. A passing failure (a
stall, a dropped connection) is retried up to the limit, resuming; a refused check is DOWNLOAD_ERROR at once.
Nothing reaches a store before every check passed, and the store writes its manifest last, so a failed download
leaves no object.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import structlog

from bus.ports import UnitOfWorkFactory
from plugins.qcow2fs.qemu_img import QemuImg
from plugins.sdk.types import ImageKind as StoredKind
from schemas.agent import DeleteVolumeOnPool
from schemas.errors import FailedPrecondition, InvalidArgument, StrataError, Transient
from schemas.image import (
    DownloadState,
    ImageDeleted,
    ImageDownloaded,
    ImageDownloadFailed,
    ImageDownloadProgressed,
    ImageDownloadStarted,
    ImageKind,
)
from services.image import base_copies
from services.image import repository as repo
from services.image.checks import algorithms_for, check_checksum, check_format
from services.image.context import ImageDeps, answer_to, later_answer
from services.image.download import Downloaded, Progress, digest_file, download
from services.image.repository import CopyRow, ImageRow, StoreRow

log = structlog.get_logger(__name__)
CONSUMER = "image.worker"
TAKEN = "download taken by another worker meanwhile; its end is left to that one"


class ImageWorker:
    """Runs downloads (up to `concurrency` at once) and deletes, woken by the handlers or its poll."""

    def __init__(self, units: UnitOfWorkFactory, deps: ImageDeps, *, poll: float = 1.0, concurrency: int = 2) -> None:
        self.units = units
        self.deps = deps
        self.wakeup = deps.wakeup
        self.poll = poll
        self.concurrency = concurrency
        self.qemu = QemuImg(deps.qemu_img)
        self._loop: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start looking for work."""
        await asyncio.to_thread(self.deps.staging.mkdir, parents=True, exist_ok=True)
        self._loop = asyncio.create_task(self._run(), name="image-worker")

    async def stop(self) -> None:
        """Stop: downloads in flight are cancelled; their leases run out and a worker resumes them later."""
        tasks = [task for task in (self._loop, *self._running) if task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def _run(self) -> None:
        while True:
            try:
                await self._take_work()
            except StrataError as error:  # the database away: look again at the next poll
                log.warning("image worker could not look for work", error=error.message)
            await self.wakeup.wait(self.poll)

    async def _take_work(self) -> None:
        while len(self._running) < self.concurrency:
            claimed = await self._claim()
            if claimed is None:
                break
            task = asyncio.create_task(self._download(*claimed))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        while (image := await self._claim_deletion()) is not None:
            await self._delete(image)

    # ------------------------------------------------------------------------------------------- downloads

    async def _claim(self) -> tuple[CopyRow, ImageRow, StoreRow] | None:
        async with self.units.begin(CONSUMER, None) as uow:
            assert uow is not None  # no incoming message: never a duplicate
            copy = await repo.claim_copy(uow.connection, self.deps.lease_seconds)
            if copy is None:
                return None
            image = await repo.find_image(uow.connection, copy.image_id)
            store = await repo.find_store(uow.connection, copy.store_id)
            assert image is not None  # the copy's foreign keys
            assert store is not None
            uow.emit(
                later_answer(
                    answer_to(copy, image),
                    ImageDownloadStarted(image_id=copy.image_id, store_id=copy.store_id, attempt=copy.attempts),
                )
            )
            return copy, image, store

    async def _from_store(self, copy: CopyRow, image: ImageRow, staged: Path, report: Progress) -> Downloaded:
        """Fetch a copy between zones from its source store (every chunk verified there), then check the whole
        file's SHA-256 against the source's record here, at the destination (CloudStack skips it: PR #3383)."""
        assert copy.source_store_id is not None
        async with self.units.begin(CONSUMER, None) as uow:
            assert uow is not None
            source = await repo.find_store(uow.connection, copy.source_store_id)
            recorded = await repo.find_copy(uow.connection, copy.image_id, copy.source_store_id)
        if source is None or recorded is None or recorded.checksum is None:
            raise FailedPrecondition(f"the source store {copy.source_store_id} no longer holds the image")
        driver = self.deps.stores.open(source.store_id, source.plugin, source.sealed_config)
        await driver.get_image(str(image.image_id), staged, progress=report)
        digests = await asyncio.to_thread(digest_file, staged, algorithms_for(image.checksum))
        copied = f"sha256:{digests['sha256']}"
        if copied != recorded.checksum:
            raise InvalidArgument(
                f"checksum check: the copy's {copied} is not the source's {recorded.checksum}", field="image_id"
            )
        size = (await asyncio.to_thread(staged.stat)).st_size
        return Downloaded(size_bytes=size, digests=digests)

    def staging_file(self, copy: CopyRow) -> Path:
        """Where a copy's download is kept until it is stored (resumed from there)."""
        return self.deps.staging / f"{copy.image_id}-{copy.store_id}.part"

    async def _download(self, copy: CopyRow, image: ImageRow, store: StoreRow) -> None:
        async with self._leased(copy):
            await self._download_leased(copy, image, store)

    @contextlib.asynccontextmanager
    async def _leased(self, copy: CopyRow) -> AsyncIterator[None]:
        """Extend the copy's lease every third of it while this worker holds the copy, so that the lease runs out only
        when the worker died: a fetch without new bytes for a while, the checks of a large file or a slow store's put
        may each last longer than the lease, and another worker must not take the copy meanwhile (it would write the
        staging file this one reads). If another worker took it all the same (this one could not reach the database
        for a whole lease), this one stops: the copy and its staging file are the other's."""
        owner = asyncio.current_task()
        assert owner is not None

        async def keep() -> None:
            while True:
                await asyncio.sleep(self.deps.lease_seconds / 3)
                try:
                    async with self.units.begin(CONSUMER, None) as uow:
                        assert uow is not None
                        held = await repo.extend_lease(uow.connection, copy, self.deps.lease_seconds)
                except StrataError as error:
                    log.warning("download lease not extended", error=error.message)
                    continue
                if not held:
                    log.warning("download taken by another worker; this one stops", image_id=str(copy.image_id))
                    owner.cancel()
                    return

        keeper = asyncio.create_task(keep())
        try:
            yield
        finally:
            keeper.cancel()
            await asyncio.wait([keeper])

    async def _download_leased(self, copy: CopyRow, image: ImageRow, store: StoreRow) -> None:
        staged = self.staging_file(copy)
        limits = self.deps.limits
        try:
            async with asyncio.timeout(limits.deadline_seconds), self._progress(copy, image) as report:
                if copy.source_store_id is None:
                    fetched = await download(
                        image.url,
                        staged,
                        algorithms=algorithms_for(image.checksum),
                        max_bytes=limits.max_bytes,
                        stall_seconds=limits.stall_seconds,
                        progress=report,
                    )
                else:
                    fetched = await self._from_store(copy, image, staged, report)
            check_checksum(image.checksum, fetched.digests)
            virtual = await check_format(self.qemu, staged, image.format, limits.max_virtual_bytes)
            driver = self.deps.stores.open(store.store_id, store.plugin, store.sealed_config)
            kind = StoredKind.ISO if image.kind is ImageKind.ISO else StoredKind.TEMPLATE
            stored = await driver.put_image(str(image.image_id), kind, staged)
        except TimeoutError:
            await self._failed(copy, image, Transient(f"download: not done within {limits.deadline_seconds:g} s"))
        except Transient as error:
            await self._failed(copy, image, error)
        except StrataError as error:
            await self._give_up(copy, image, error)
        else:
            checksum = f"sha256:{stored.checksum}"
            if stored.checksum != fetched.digests["sha256"]:
                await self._give_up(
                    copy, image, StrataError("store check: the store holds other bytes than downloaded")
                )
                return
            if await self._record_downloaded(copy, image, fetched.size_bytes, virtual, checksum):
                await asyncio.to_thread(staged.unlink, True)

    @contextlib.asynccontextmanager
    async def _progress(self, copy: CopyRow, image: ImageRow) -> AsyncIterator[Progress]:
        """A progress callback; the latest figures are recorded (extending the lease) and published every interval."""
        latest: list[tuple[int, int | None]] = []
        sent: list[tuple[int, int | None]] = []

        def report(done: int, total: int | None) -> None:
            latest[:] = [(done, total)]

        async def publish() -> None:
            while True:
                await asyncio.sleep(self.deps.progress_interval)
                if latest and latest != sent:
                    sent[:] = latest
                    done, total = latest[0]
                    try:
                        async with self.units.begin(CONSUMER, None) as uow:
                            assert uow is not None
                            if not await repo.record_progress(
                                uow.connection, copy, done, total, self.deps.lease_seconds
                            ):
                                continue  # another worker took the copy: the lease keeper stops this one
                            uow.emit(
                                later_answer(
                                    answer_to(copy, image),
                                    ImageDownloadProgressed(
                                        image_id=copy.image_id,
                                        store_id=copy.store_id,
                                        done_bytes=done,
                                        total_bytes=total,
                                    ),
                                )
                            )
                    except StrataError as error:
                        log.warning("download progress not recorded", error=error.message)

        publisher = asyncio.create_task(publish())
        try:
            yield report
        finally:
            publisher.cancel()
            await asyncio.wait([publisher])

    async def _failed(self, copy: CopyRow, image: ImageRow, error: StrataError) -> None:
        """A passing failure: another attempt resumes the staging file, until the attempts are used up."""
        if copy.attempts >= self.deps.limits.attempts:
            await self._give_up(copy, image, error)
            return
        log.info("download attempt failed; it will be resumed", image_id=str(copy.image_id), error=error.message)
        async with self.units.begin(CONSUMER, None) as uow:
            assert uow is not None
            if not await repo.release_copy(uow.connection, copy, error.message):
                log.warning(TAKEN, image_id=str(copy.image_id), store_id=str(copy.store_id))
                return
        self.wakeup.soon()

    async def _give_up(self, copy: CopyRow, image: ImageRow, error: StrataError) -> None:
        """DOWNLOAD_ERROR with the reason; the staging file goes, nothing was stored. A copy another worker took
        meanwhile is that worker's: its staging file and its end are left alone."""
        async with self.units.begin(CONSUMER, None) as uow:
            assert uow is not None
            held = await repo.extend_lease(uow.connection, copy, self.deps.lease_seconds)
        if not held:
            log.warning(TAKEN, image_id=str(copy.image_id), store_id=str(copy.store_id))
            return
        await asyncio.to_thread(self.staging_file(copy).unlink, True)
        log.warning("download failed", image_id=str(copy.image_id), store_id=str(copy.store_id), error=error.message)
        async with self.units.begin(CONSUMER, None) as uow:
            assert uow is not None
            if not await repo.finish_copy(uow.connection, copy, DownloadState.DOWNLOAD_ERROR, error=error.message):
                log.warning(TAKEN, image_id=str(copy.image_id), store_id=str(copy.store_id))
                return
            uow.emit(
                later_answer(
                    answer_to(copy, image),
                    ImageDownloadFailed(image_id=copy.image_id, store_id=copy.store_id, error=error.info()),
                )
            )

    async def _record_downloaded(
        self, copy: CopyRow, image: ImageRow, size_bytes: int, virtual_size_bytes: int, checksum: str
    ) -> bool:
        """DOWNLOADED, unless another worker took the copy meanwhile (False: its end is that worker's)."""
        async with self.units.begin(CONSUMER, None) as uow:
            assert uow is not None
            if not await repo.finish_copy(
                uow.connection,
                copy,
                DownloadState.DOWNLOADED,
                checksum=checksum,
                size_bytes=size_bytes,
                virtual_size_bytes=virtual_size_bytes,
            ):
                log.warning(TAKEN, image_id=str(copy.image_id), store_id=str(copy.store_id))
                return False
            uow.emit(
                later_answer(
                    answer_to(copy, image),
                    ImageDownloaded(
                        image_id=copy.image_id,
                        store_id=copy.store_id,
                        size_bytes=size_bytes,
                        virtual_size_bytes=virtual_size_bytes,
                        checksum=checksum,
                    ),
                )
            )
        return True

    # --------------------------------------------------------------------------------------------- deletes

    async def _claim_deletion(self) -> ImageRow | None:
        async with self.units.begin(CONSUMER, None) as uow:
            assert uow is not None
            return await repo.claim_deletion(uow.connection)

    async def _delete(self, image: ImageRow) -> None:
        """Delete the image from every store it reached (a missing one is fine), then forget it, have its base
        copies deleted from their pools (no volume uses them: the delete was refused otherwise), and answer."""
        async with self.units.begin(CONSUMER, None) as uow:
            assert uow is not None
            copies = await repo.copies_of(uow.connection, image.image_id)
            stores = [await repo.find_store(uow.connection, copy.store_id, removed=True) for copy, _ in copies]
        for store in stores:
            if store is not None and store.sealed_config:
                driver = self.deps.stores.open(store.store_id, store.plugin, store.sealed_config)
                await driver.delete_image(str(image.image_id))
        async with self.units.begin(CONSUMER, None) as uow:
            assert uow is not None
            for base in await base_copies.take_base_copies(uow.connection, image.image_id):
                uow.emit(
                    later_answer(
                        image.request,
                        DeleteVolumeOnPool(
                            pool_id=base.pool_id,
                            volume_id=base.base_volume_id,
                            host=base.host,
                            cluster_id=base.cluster_id,
                        ),
                    )
                )
            if await repo.delete_image(uow.connection, image.image_id):
                uow.emit(later_answer(image.request, ImageDeleted(image_id=image.image_id)))
