"""The API daemon, declared (`DAEMON`): the HTTP API and the web console (`strata run api`, `strata up`).

It composes, it does not own (DESIGN §10): every change is a command on the bus, every listing a query, as the CLI
sends them. It owns its schema `api` only: the keys (hashed), the console's sessions, and the operations it
follows, whose outcomes its consumer records.
"""

from typing import Any

from bus.ports import QueueKind, Transport, UnitOfWorkFactory
from bus.postgres.pool import Pool
from bus.runtime import Consumer
from plugins.registry import Registry
from services.api.app import create_app
from services.api.context import ApiContext, Owners
from services.api.keys import KeyStore
from services.api.operations import Operations
from services.api.outcomes import EVENT_HANDLERS
from services.api.server import ApiServer
from services.api.settings import ApiSettings
from services.runtime.daemon import Daemon, Queue, Service, Wiring
from services.runtime.handlers import bind_context
from services.runtime.migrations import migrate_service

CONSUMER = "api"
SCHEMA = "api"


def build_api(
    transport: Transport,
    units: UnitOfWorkFactory,
    pool: Pool,
    plugins: Registry,
    settings: ApiSettings,
    *,
    queue_kind: QueueKind = QueueKind.QUORUM,
) -> tuple[Service, ApiServer, ApiContext]:
    """Wire the API on `transport`: its consumer on `<ns>.api` (operations' outcomes), then its HTTP server."""
    operations = Operations(pool)
    context = ApiContext(
        transport=transport,
        pool=pool,
        keys=KeyStore(pool, session_hours=settings.session_hours, cache_seconds=settings.key_cache_seconds),
        operations=operations,
        plugins=plugins,
        settings=settings,
        owners=Owners(settings.owner_check_seconds),
    )
    consumer = Consumer(
        transport, units, name=CONSUMER, handlers=bind_context(EVENT_HANDLERS, None), queue_kind=queue_kind
    )
    server = ApiServer(create_app(context), host=settings.host, port=settings.port)
    return Service([consumer, server], on_stop=[operations.stop]), server, context


async def migrate_api(connection: Any) -> list[int]:  # an asyncpg connection outside any transaction
    """Apply the API's migrations not yet applied (schema `api`)."""
    return await migrate_service(connection, SCHEMA, "services.api.migrations")


def build(wiring: Wiring) -> Service:
    """The API on the process's wiring (STRATA_API_HOST, STRATA_API_PORT)."""
    service, _, _ = build_api(
        wiring.transport,
        wiring.units,
        wiring.pool,
        wiring.plugins,
        wiring.settings.get(ApiSettings),
        queue_kind=wiring.settings.bus.queue_kind,
    )
    return service


DAEMON = Daemon(
    name="api",
    summary="the HTTP API (OpenAPI 3.1) and the web console, on STRATA_API_HOST:STRATA_API_PORT",
    build=build,
    migrations=(migrate_api,),
    queues=(Queue(CONSUMER, tuple(EVENT_HANDLERS)),),
)
