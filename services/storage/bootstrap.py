"""The storage daemon, declared (`DAEMON`): the only place that builds the storage service's adapters.

`build_storage` wires it on a given transport and units of work (tests run it so); the runner
(`services.runtime.runner`) builds it from the process's wiring for `strata run storage`, `strata up` and the demo.
"""

from bus.ports import QueueKind, Transport, UnitOfWorkFactory
from bus.runtime import Consumer
from plugins.registry import Registry
from schemas import MessageRegistry, registry
from services.domain.allocator import CapacityThresholds
from services.runtime.daemon import Daemon, Queue, Service, Wiring
from services.runtime.handlers import bind_context
from services.storage.context import Storage
from services.storage.handlers import COMMAND_HANDLERS, EVENT_HANDLERS
from services.storage.metrics import PoolMetrics
from services.storage.schema import migrate_storage
from services.storage.stats import StatsCollector

CONSUMER = "storage"
HANDLERS = {**COMMAND_HANDLERS, **EVENT_HANDLERS}


def build_storage(
    transport: Transport,
    units: UnitOfWorkFactory,
    *,
    plugins: Registry,
    thresholds: CapacityThresholds | None = None,
    stats_interval: float = 60.0,
    prefetch: int = 32,
    queue_kind: QueueKind = QueueKind.QUORUM,
    messages: MessageRegistry = registry,
) -> Service:
    """Wire the storage service on the given adapters (not started). Its tables must exist (`migrate_storage`)."""
    storage = Storage(plugins=plugins, thresholds=thresholds or CapacityThresholds())
    consumer = Consumer(
        transport,
        units,
        name=CONSUMER,
        handlers=bind_context(HANDLERS, storage),
        prefetch=prefetch,
        queue_kind=queue_kind,
        messages=messages,
    )
    return Service([consumer, StatsCollector(units, storage, interval=stats_interval)])


def build(wiring: Wiring) -> Service:
    """The storage service on the process's wiring, set by STRATA_* (CloudStack's capacity settings among them)."""
    settings = wiring.settings.runtime
    service = build_storage(
        wiring.transport,
        wiring.units,
        plugins=wiring.plugins,
        thresholds=settings.capacity_thresholds(),
        stats_interval=settings.storage_stats_interval / 1000,
        queue_kind=wiring.settings.bus.queue_kind,
    )
    service.metrics.append(PoolMetrics(wiring.metrics, wiring.pool).refresh)
    return service


DAEMON = Daemon(
    name="storage",
    summary="pools and volumes: allocation, states, capacity statistics",
    build=build,
    migrations=(migrate_storage,),
    queues=(Queue(CONSUMER, tuple(HANDLERS)),),
)
