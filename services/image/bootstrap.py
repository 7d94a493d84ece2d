"""The image daemon, declared (`DAEMON`): the only place that builds the image service's adapters.

`build_image` wires it on a given transport and units of work (tests run it so); the runner builds it from the
process's wiring for `strata run image`, `strata up` and the demo.
"""

from typing import Any

from bus.ports import QueueKind, Transport, UnitOfWorkFactory
from bus.runtime import Consumer
from services.image.context import ImageDeps
from services.image.exports import ExportWorker
from services.image.handlers import COMMAND_HANDLERS, EVENT_HANDLERS
from services.image.settings import ImageSettings
from services.image.worker import ImageWorker
from services.runtime.daemon import Daemon, Queue, Service, Settings, Wiring
from services.runtime.handlers import bind_context
from services.runtime.migrations import migrate_service
from services.runtime.sealing import SecretSealer

CONSUMER = "image"
SCHEMA = "image"
HANDLERS = {**COMMAND_HANDLERS, **EVENT_HANDLERS}


def build_image(
    transport: Transport,
    units: UnitOfWorkFactory,
    deps: ImageDeps,
    *,
    poll: float = 1.0,
    concurrency: int = 2,
    prefetch: int = 16,
    queue_kind: QueueKind = QueueKind.QUORUM,
) -> Service:
    """Wire the service on `transport` and `units` (PostgreSQL units of work: it keeps its state there): its
    consumer on queue `<ns>.image`, then its download worker and its export worker; the stores' drivers close last."""
    consumer = Consumer(
        transport, units, name=CONSUMER, handlers=bind_context(HANDLERS, deps), prefetch=prefetch, queue_kind=queue_kind
    )
    worker = ImageWorker(units, deps, poll=poll, concurrency=concurrency)
    exporter = ExportWorker(units, deps, poll=poll)
    return Service([consumer, worker, exporter], on_stop=[deps.stores.close])


async def migrate_image(connection: Any) -> list[int]:  # an asyncpg connection outside any transaction
    """Apply the image service's migrations not yet applied (schema `image`); return the versions applied."""
    return await migrate_service(connection, SCHEMA, "services.image.migrations")


def check(settings: Settings) -> None:
    """Before connecting: read the deployment key (a bad key file fails at once)."""
    SecretSealer.from_file(settings.runtime.secret_key_file)


def build(wiring: Wiring) -> Service:
    """The image service on the process's wiring (STRATA_IMAGE_* settings)."""
    settings = wiring.settings.get(ImageSettings)
    deps = ImageDeps(
        plugins=wiring.plugins,
        sealer=SecretSealer.from_file(wiring.settings.runtime.secret_key_file),
        staging=settings.staging_dir,
        limits=settings.limits(),
        lease_seconds=settings.lease_seconds,
    )
    return build_image(
        wiring.transport,
        wiring.units,
        deps,
        concurrency=settings.concurrency,
        queue_kind=wiring.settings.bus.queue_kind,
    )


DAEMON = Daemon(
    name="image",
    summary="image stores per zone, templates and ISOs: downloads from URLs, checksums and format checks",
    build=build,
    migrations=(migrate_image,),
    queues=(Queue(CONSUMER, tuple(HANDLERS)),),
    check=check,
)
