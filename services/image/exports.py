"""Exports of images to URLs (`image.export`): the handler checks the image and a store that holds it and records
the export; the export worker claims it with a lease, fetches the image from the store into a staging file (every
chunk verified by the store's plugin), sends it with an HTTP PUT to the URL and records the outcome with its event,
all with no transaction open across the slow work. A passing failure (the receiver away, a dropped connection, a
5xx) is tried again up to the download limits' attempts; a refusal (4xx) fails at once. The URL is cleared from the
table when the export ends.
"""

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import structlog

from bus.ports import UnitOfWork, UnitOfWorkFactory
from schemas import Envelope, Event
from schemas.errors import FailedPrecondition, InvalidArgument, NotFound, StrataError, Transient
from schemas.image import DownloadState
from schemas.image_exports import ExportImage, ImageExported, ImageExportFailed, ImageExportProgressed
from services.image import repository as repo
from services.image.answering import refusing
from services.image.context import ImageDeps, later_answer, lineage
from services.runtime.polling import PollingPart

log = structlog.get_logger(__name__)
CONSUMER = "image.exports"
BLOCK = 4 << 20
PENDING, RUNNING, DONE, FAILED = "PENDING", "RUNNING", "DONE", "FAILED"


async def export_image(command: ExportImage, envelope: Envelope, uow: UnitOfWork, deps: ImageDeps) -> None:
    """Record the export for the worker, from the given store or one that holds the image; refuse it otherwise."""

    def failed(error: StrataError) -> Event:
        return ImageExportFailed(export_id=command.export_id, image_id=command.image_id, error=error.info())

    async def body() -> None:
        connection = uow.connection
        if await connection.fetchval("SELECT 1 FROM image.exports WHERE export_id = $1", command.export_id):
            return  # asked again: its outcome comes (or came) from the worker
        image = await repo.find_image(connection, command.image_id)
        if image is None or image.deleting:
            raise NotFound(f"no image {command.image_id} (see `strata template list`)", field="image_id")
        held = [
            copy.store_id
            for copy, _ in await repo.copies_of(connection, command.image_id)
            if copy.state is DownloadState.DOWNLOADED
        ]
        if command.store_id is not None and command.store_id not in held:
            raise FailedPrecondition(
                f"image {image.name} is not DOWNLOADED in store {command.store_id}", field="store_id"
            )
        if not held:
            raise FailedPrecondition(f"no store holds image {image.name} yet: wait for its download", field="image_id")
        await connection.execute(
            "INSERT INTO image.exports (export_id, image_id, store_id, url, state, request) "
            "VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
            command.export_id,
            command.image_id,
            command.store_id or held[0],
            command.url,
            PENDING,
            json.dumps(lineage(envelope)),
        )

    await refusing(uow, envelope, failed, body)


@dataclass(frozen=True)
class _Export:
    export_id: UUID
    image_id: UUID
    store_id: UUID
    url: str
    attempts: int
    request: dict[str, Any]  # Any: JSON lineage


class ExportWorker(PollingPart):
    """Runs exports one at a time (each is bounded by the network and the store, not by this process)."""

    name = CONSUMER

    def __init__(self, units: UnitOfWorkFactory, deps: ImageDeps, *, poll: float = 1.0) -> None:
        self.units = units
        self.deps = deps
        super().__init__(poll=poll)

    async def run_once(self) -> bool:
        claimed = await self._claim()
        if claimed is None:
            return False
        await self._run(claimed)
        return True

    async def _claim(self) -> _Export | None:
        async with self.units.begin(CONSUMER, None) as uow:
            assert uow is not None  # no incoming message: never a duplicate
            row = await uow.connection.fetchrow(
                "UPDATE image.exports e SET state = $1, attempts = attempts + 1, updated_at = now(), "
                "lease_until = now() + make_interval(secs => $2) WHERE export_id = (SELECT export_id FROM "
                "image.exports WHERE state = ANY($3::text[]) AND (lease_until IS NULL OR lease_until < now()) "
                "ORDER BY updated_at LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING e.*",
                RUNNING,
                self.deps.limits.deadline_seconds,
                [PENDING, RUNNING],
            )
        if row is None:
            return None
        request: dict[str, Any] = json.loads(row["request"])
        return _Export(row["export_id"], row["image_id"], row["store_id"], row["url"], row["attempts"], request)

    async def _run(self, export: _Export) -> None:
        staged = self.deps.staging / f"export-{export.export_id}.part"
        try:
            exported = await self._send(export, staged)
        except StrataError as error:
            again = isinstance(error, Transient) and export.attempts < self.deps.limits.attempts
            log.warning("image export failed", export_id=str(export.export_id), error=error.message, again=again)
            await self._end(export, PENDING if again else FAILED, error.message, None if again else error)
        else:
            await self._end(export, DONE, None, exported)
        finally:
            await asyncio.to_thread(staged.unlink, True)

    async def _send(self, export: _Export, staged: Path) -> ImageExported:
        async with self.units.begin(CONSUMER, None) as uow:
            assert uow is not None
            store = await repo.find_store(uow.connection, export.store_id)
        if store is None:
            raise FailedPrecondition(f"store {export.store_id} was removed", field="store_id")
        driver = self.deps.stores.open(store.store_id, store.plugin, store.sealed_config)
        await driver.get_image(str(export.image_id), staged)
        size = (await asyncio.to_thread(staged.stat)).st_size
        digest = await _put(export, staged, size, self._reporter(export), self.deps.limits.stall_seconds)
        return ImageExported(
            export_id=export.export_id,
            image_id=export.image_id,
            store_id=export.store_id,
            size_bytes=size,
            checksum=f"sha256:{digest}",
        )

    def _reporter(self, export: _Export) -> "_Reporter":
        return _Reporter(self.units, export, self.deps.progress_interval)

    async def _end(self, export: _Export, state: str, error: str | None, outcome: Event | StrataError | None) -> None:
        async with self.units.begin(CONSUMER, None) as uow:
            assert uow is not None
            await uow.connection.execute(
                "UPDATE image.exports SET state = $2, error = $3, lease_until = NULL, updated_at = now(), "
                "url = CASE WHEN $2 = ANY($4::text[]) THEN NULL ELSE url END WHERE export_id = $1",
                export.export_id,
                state,
                error,
                [DONE, FAILED],
            )
            if isinstance(outcome, StrataError):
                outcome = ImageExportFailed(export_id=export.export_id, image_id=export.image_id, error=outcome.info())
            if outcome is not None:
                uow.emit(later_answer(export.request, outcome))


class _Reporter:
    """Publishes the export's progress at most every `interval` seconds, each report in a unit of its own."""

    def __init__(self, units: UnitOfWorkFactory, export: _Export, interval: float) -> None:
        self.units, self.export, self.interval = units, export, interval
        self.sent_at = 0.0

    async def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.sent_at < self.interval and done < total:
            return
        self.sent_at = now
        progressed = ImageExportProgressed(
            export_id=self.export.export_id, image_id=self.export.image_id, done_bytes=done, total_bytes=total
        )
        try:
            async with self.units.begin(CONSUMER, None) as uow:
                assert uow is not None
                uow.emit(later_answer(self.export.request, progressed))
        except StrataError as error:  # progress is for watching; the outcome is what counts
            log.info("export progress not published", error=error.message)


async def _put(export: _Export, staged: Path, size: int, report: _Reporter, stall_seconds: float) -> str:
    """PUT the staged file to the export's URL; return its SHA-256 (hex)."""
    digest = hashlib.sha256()

    async def body() -> AsyncIterator[bytes]:
        sent = 0
        with staged.open("rb") as source:
            while block := await asyncio.to_thread(source.read, BLOCK):
                digest.update(block)
                sent += len(block)
                await report(sent, size)
                yield block

    timeout = aiohttp.ClientTimeout(total=None, sock_connect=stall_seconds, sock_read=stall_seconds)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.put(export.url, data=body(), headers={"Content-Length": str(size)}) as answer,
        ):
            if answer.status >= 500 or answer.status in (408, 429):
                raise Transient(f"export: the receiver answered {answer.status} {answer.reason or ''}".rstrip())
            if answer.status >= 300:
                raise InvalidArgument(
                    f"export: the receiver refused the image ({answer.status} {answer.reason or ''})".rstrip(),
                    field="url",
                )
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        raise Transient(f"export: sending to the receiver failed: {type(error).__name__}") from None
    return digest.hexdigest()
