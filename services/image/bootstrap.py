"""The image daemon: the only place that builds its adapters.

`ImageService.build(...)` runs the service on a given transport and units of work (for `strata up`, the demo and
tests); `run()` is `strata run image`: it opens the database pool, RabbitMQ and the outbox relay itself, migrates,
and runs until SIGINT or SIGTERM.
"""

from dataclasses import dataclass

import structlog

from bus.codec import encode
from bus.ports import QueueKind, Transport, UnitOfWorkFactory
from bus.postgres import OutboxRelay, PostgresUnitOfWorkFactory, create_pool, migrate
from bus.postgres.pool import Pool
from bus.rabbit import RabbitTransport
from bus.runtime import Consumer
from bus.settings import BusSettings
from plugins.registry import load_plugins
from services.image.context import ImageDeps
from services.image.service import CONSUMER_NAME, consumer
from services.image.settings import ImageSettings
from services.image.wakeup import Wakeup
from services.image.worker import ImageWorker
from services.runtime.health import HealthServer
from services.runtime.logs import configure_logging
from services.runtime.migrations import migrate_service_at
from services.runtime.sealing import SecretSealer
from services.runtime.settings import RuntimeSettings
from services.runtime.shutdown import GracefulShutdown

log = structlog.get_logger(__name__)

SCHEMA = "image"


@dataclass
class ImageService:
    """The service's consumer and worker, started and stopped together."""

    consumer: Consumer
    worker: ImageWorker

    @classmethod
    def build(
        cls,
        transport: Transport,
        units: UnitOfWorkFactory,
        deps: ImageDeps,
        *,
        poll: float = 1.0,
        concurrency: int = 2,
        queue_kind: QueueKind = QueueKind.QUORUM,
    ) -> "ImageService":
        """Wire the service on `transport` and `units` (PostgreSQL units of work: it keeps its state there)."""
        wakeup = Wakeup()
        return cls(
            consumer(transport, units, deps, wakeup, queue_kind=queue_kind),
            ImageWorker(units, deps, wakeup, poll=poll, concurrency=concurrency),
        )

    async def start(self) -> None:
        """Declare the queue, consume, and run the worker."""
        await self.consumer.start()
        await self.worker.start()

    async def stop(self) -> None:
        """Stop taking work; downloads in flight stop and are resumed by the next worker to take them."""
        await self.consumer.stop()
        await self.worker.stop()


async def prepare_database(pool: Pool, database_url: str) -> None:
    """Create or upgrade the bus tables and schema `image`."""
    async with pool.acquire() as connection:
        await migrate(connection)
    await migrate_service_at(database_url, SCHEMA, "services.image.migrations")


def deps_from(settings: ImageSettings, runtime: RuntimeSettings) -> ImageDeps:
    """The service's deps from its settings (the deployment key is read here: a bad key file fails at once)."""
    return ImageDeps(
        plugins=load_plugins(),
        sealer=SecretSealer.from_file(runtime.secret_key_file),
        staging=settings.staging_dir,
        limits=settings.limits(),
        lease_seconds=settings.lease_seconds,
    )


async def run(
    settings: RuntimeSettings | None = None,
    image_settings: ImageSettings | None = None,
    bus_settings: BusSettings | None = None,
) -> None:
    """Run the image daemon until SIGTERM or SIGINT, then shut down gracefully."""
    settings = settings or RuntimeSettings()
    image_settings = image_settings or ImageSettings()
    bus_settings = bus_settings or BusSettings()
    configure_logging(CONSUMER_NAME, level=settings.log_level, json=settings.log_json)
    deps = deps_from(image_settings, settings)
    database_url = settings.database_url.get_secret_value()
    shutdown = GracefulShutdown(grace_seconds=settings.shutdown_grace_seconds)
    shutdown.install_signal_handlers()
    pool = await create_pool(database_url, min_size=1, max_size=8)
    shutdown.on_close("database pool", pool.close)
    await prepare_database(pool, database_url)
    transport = RabbitTransport(bus_settings, purpose=CONSUMER_NAME)
    await transport.start()
    shutdown.on_close("transport", transport.close)
    relay = OutboxRelay(pool, transport, database_url=database_url)
    await relay.start()
    shutdown.on_close("outbox relay", relay.stop)
    service = ImageService.build(
        transport,
        PostgresUnitOfWorkFactory(pool, encode=encode),
        deps,
        concurrency=image_settings.concurrency,
        queue_kind=bus_settings.queue_kind,
    )
    await service.start()
    shutdown.on_stop_intake("image consumer and worker", service.stop)
    health = HealthServer(host=settings.health_host, port=settings.health_port)
    await health.start()
    shutdown.on_close("health server", health.close)
    log.info("image service running", health_port=health.port)
    await shutdown.run()
