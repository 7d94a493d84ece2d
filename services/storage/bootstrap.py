"""The only place that builds the storage service's adapters and wires them: `build_storage` on a given transport
and unit of work factory (the demo runs it in-process on the memory transport), `run` as a daemon on RabbitMQ and
PostgreSQL with health, metrics and a graceful shutdown.
"""

from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from bus.codec import encode
from bus.ports import Handler, Transport, UnitOfWorkFactory
from bus.postgres import OutboxRelay, PostgresUnitOfWorkFactory, create_pool, migrate
from bus.rabbit import RabbitTransport
from bus.runtime import Consumer
from bus.settings import BusSettings
from plugins.registry import Registry, load_plugins
from schemas import Message, MessageRegistry, registry
from services.domain.allocator import CapacityThresholds
from services.runtime.handlers import bind_context
from services.runtime.health import HealthServer
from services.runtime.logs import configure_logging
from services.runtime.settings import RuntimeSettings
from services.runtime.shutdown import GracefulShutdown
from services.storage.context import Storage
from services.storage.handlers import COMMAND_HANDLERS, EVENT_HANDLERS
from services.storage.schema import migrate_storage
from services.storage.stats import StatsCollector

log = structlog.get_logger(__name__)
CONSUMER = "storage"


@dataclass
class StorageService:
    """A running storage service: its consumer and its statistics collector."""

    consumer: Consumer
    stats: StatsCollector

    async def start(self) -> None:
        """Start consuming and collecting statistics."""
        await self.consumer.start()
        self.stats.start()

    async def stop(self) -> None:
        """Stop collecting and consuming (in-flight messages finish first)."""
        await self.stats.stop()
        await self.consumer.stop()


def handler_table(storage: Storage) -> Mapping[type[Message], Handler]:
    """The storage service's handler table with its context bound to every handler."""
    return bind_context({**COMMAND_HANDLERS, **EVENT_HANDLERS}, storage)


def build_storage(
    transport: Transport,
    units: UnitOfWorkFactory,
    *,
    plugins: Registry,
    thresholds: CapacityThresholds | None = None,
    stats_interval: float = 60.0,
    prefetch: int = 32,
    messages: MessageRegistry = registry,
) -> StorageService:
    """Wire the storage service on the given adapters (not started). Its tables must exist (`migrate_storage`)."""
    storage = Storage(plugins=plugins, thresholds=thresholds or CapacityThresholds())
    consumer = Consumer(
        transport, units, name=CONSUMER, handlers=handler_table(storage), prefetch=prefetch, messages=messages
    )
    return StorageService(consumer, StatsCollector(units, storage, interval=stats_interval))


async def run(settings: RuntimeSettings, bus_settings: BusSettings | None = None) -> None:
    """Run the storage service until SIGTERM or SIGINT, then shut down gracefully."""
    configure_logging(CONSUMER, level=settings.log_level, json=settings.log_json)
    database_url = settings.database_url.get_secret_value()
    shutdown = GracefulShutdown(grace_seconds=settings.shutdown_grace_seconds)
    shutdown.install_signal_handlers()
    pool = await create_pool(database_url, min_size=1, max_size=8)
    shutdown.on_close("database pool", pool.close)
    async with pool.acquire() as connection:
        await migrate(connection)
        await migrate_storage(connection)
    transport = RabbitTransport(bus_settings or BusSettings(), purpose=CONSUMER)
    await transport.start()
    shutdown.on_close("transport", transport.close)
    relay = OutboxRelay(pool, transport, database_url=database_url)
    await relay.start()
    shutdown.on_close("outbox relay", relay.stop)
    service = build_storage(
        transport,
        PostgresUnitOfWorkFactory(pool, encode=encode),
        plugins=load_plugins(),
        thresholds=settings.capacity_thresholds(),
        stats_interval=settings.storage_stats_interval / 1000,
    )
    await service.start()
    shutdown.on_stop_intake("storage consumer", service.stop)
    health = HealthServer(host=settings.health_host, port=settings.health_port)
    await health.start()
    shutdown.on_close("health server", health.close)
    log.info("storage service running", health_port=health.port)
    await shutdown.run()
