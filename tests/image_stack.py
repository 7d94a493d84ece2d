"""The image service in the test's process on the real servers: a database pool, a RabbitMQ transport in the test's
namespace, an outbox relay, a watcher of every event, and helpers to register images and wait for their outcome."""

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bus.codec import decode, encode
from bus.facade import Bus
from bus.ports import Binding, Delivery, Subscription
from bus.postgres import OutboxRelay, PostgresUnitOfWorkFactory, RelaySettings, create_pool, migrate
from bus.postgres.pool import Pool
from bus.rabbit import RabbitTransport
from plugins.registry import load_plugins
from schemas import Envelope, Event, Message
from schemas.image import (
    AddImageStore,
    ImageDownloaded,
    ImageDownloadFailed,
    ImageFormat,
    ImageKind,
    ImageStoreAdded,
    RegisterImage,
)
from schemas.image_queries import ImageInfo, ImagesListed, ListImages
from services.image.bootstrap import CONSUMER, build_image, migrate_image
from services.image.context import DownloadLimits, ImageDeps
from services.runtime.daemon import Service
from services.runtime.sealing import KEY_BYTES, SecretSealer
from tests.bus_fixtures import bus_settings
from tests.helpers import assert_eventually

M = TypeVar("M", bound=Message)
ZONE = uuid.UUID("00000000-0000-4000-8000-00000000000a")


@dataclass
class ImageStack:
    """One test's image service and what it talks over."""

    pool: Pool
    transport: RabbitTransport
    relay: OutboxRelay
    service: Service
    deps: ImageDeps
    events: list[Envelope] = field(default_factory=list)
    watcher: Subscription | None = None

    async def send(self, command: Message) -> Envelope:
        envelope = Envelope.wrap(command, producer="test")
        await Bus(self.transport).publish(envelope)
        return envelope

    async def outcome(self, cause: Envelope, *types: type[Event], timeout: float = 60.0) -> Event:
        """The first event of `types` in the command's correlation."""

        def found() -> list[Event]:
            return [
                e.payload
                for e in self.events
                if e.correlation_id == cause.correlation_id and isinstance(e.payload, types)
            ]

        names = ", ".join(t.__name__ for t in types)
        await assert_eventually(lambda: bool(found()), timeout=timeout, what=f"{names} after {cause.type}")
        event = found()[0]
        assert isinstance(event, Event)
        return event

    def of_type(self, model: type[M]) -> list[M]:
        return [e.payload for e in self.events if isinstance(e.payload, model)]

    async def add_store(self, plugin: str, config: dict[str, Any], *, zone: uuid.UUID = ZONE) -> uuid.UUID:
        store_id = uuid.uuid4()
        command = AddImageStore(
            store_id=store_id, name=f"store-{store_id.hex[:6]}", zone_id=zone, plugin=plugin, config=config
        )
        added = await self.outcome(await self.send(command), ImageStoreAdded)
        assert isinstance(added, ImageStoreAdded), added
        return store_id

    async def register(
        self, url: str, *, checksum: str | None = None, fmt: ImageFormat = ImageFormat.QCOW2, zone: uuid.UUID = ZONE
    ) -> tuple[uuid.UUID, Event]:
        """Register a template; return its id and its (first store's) download outcome."""
        image_id = uuid.uuid4()
        kind = ImageKind.ISO if fmt is ImageFormat.ISO else ImageKind.TEMPLATE
        command = RegisterImage(
            image_id=image_id,
            name=f"img-{image_id.hex[:8]}",
            kind=kind,
            format=fmt,
            zone_id=zone,
            url=url,
            checksum=checksum,
        )
        outcome = await self.outcome(await self.send(command), ImageDownloaded, ImageDownloadFailed)
        return image_id, outcome

    async def describe(self, image_id: uuid.UUID) -> ImageInfo:
        reply = await Bus(self.transport).request(
            Envelope.wrap(ListImages(image_id=image_id), producer="test"), timeout=10.0
        )
        assert isinstance(reply.payload, ImagesListed)
        (image,) = reply.payload.images
        return image


@asynccontextmanager
async def image_stack(
    database_url: str, amqp_url: str, namespace: str, staging: Path, limits: DownloadLimits | None = None
) -> AsyncIterator[ImageStack]:
    """An image service started in the test's namespace and database; everything removed at the end."""
    pool = await create_pool(database_url, min_size=1, max_size=6)
    async with pool.acquire() as connection:
        await migrate(connection)
        await migrate_image(connection)
    transport = RabbitTransport(bus_settings(namespace, amqp_url), purpose="image-test")
    await transport.start()
    relay = OutboxRelay(pool, transport, database_url=database_url, settings=RelaySettings(poll_interval=0.1))
    await relay.start()
    deps = ImageDeps(
        plugins=load_plugins(),
        sealer=SecretSealer(os.urandom(KEY_BYTES)),
        staging=staging,
        limits=limits or DownloadLimits(stall_seconds=2.0, attempts=2),
        lease_seconds=5.0,
        progress_interval=0.2,
    )
    service = build_image(transport, PostgresUnitOfWorkFactory(pool, encode=encode), deps, poll=0.2)
    stack = ImageStack(pool, transport, relay, service, deps)

    async def record(delivery: Delivery) -> None:
        stack.events.append(decode(delivery.message))

    stack.watcher = await transport.watch([Binding("events", "#")], record)
    await service.start()
    try:
        yield stack
    finally:
        await service.stop()
        await stack.watcher.cancel()
        await relay.stop()
        await transport.close()
        await transport.delete_namespace([f"{namespace}.{CONSUMER}"])
        await pool.close()
