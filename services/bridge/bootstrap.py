"""The bridge daemon, declared (`DAEMON`): the only place that builds the bridge's adapters.

Three parts, started in this order and stopped in reverse: the consumer of strata's outcome events (queue
`<ns>.bridge`), the answer relay, and the link to CloudStack's exchange (queue `<ns>.bridge.cloudstack`), so that
nothing is taken from CloudStack before the bridge can follow what it starts.
"""

from typing import Any

from bus.facade import Bus
from bus.runtime import Consumer
from services.bridge.answers import AnswerRelay
from services.bridge.builders import Defaults
from services.bridge.inbound import Inbound
from services.bridge.link import CloudStackLink
from services.bridge.lookups import BusLookups
from services.bridge.metrics import BridgeMetrics
from services.bridge.outcomes import EVENT_HANDLERS, OutcomeDeps
from services.bridge.settings import BridgeSettings
from services.runtime.daemon import Daemon, Queue, Service, Wiring
from services.runtime.handlers import bind_context
from services.runtime.health import HealthCheck
from services.runtime.migrations import migrate_service

CONSUMER = "bridge"
SCHEMA = "bridge"


def cloudstack_queue(namespace: str) -> str:
    """The bridge's own queue on CloudStack's exchange (one per strata namespace)."""
    return f"{namespace}.bridge.cloudstack"


async def migrate_bridge(connection: Any) -> list[int]:  # an asyncpg connection outside any transaction
    """Apply the bridge's migrations not yet applied (schema `bridge`); return the versions applied."""
    return await migrate_service(connection, SCHEMA, "services.bridge.migrations")


def _linked(link: CloudStackLink) -> HealthCheck:
    async def check() -> bool:
        return link.connected.is_set()

    return check


def build(wiring: Wiring) -> Service:
    """The bridge on the process's wiring; CloudStack's broker is STRATA_BRIDGE_AMQP_URL, else strata's own."""
    settings = wiring.settings.get(BridgeSettings)
    metrics = BridgeMetrics(wiring.metrics)
    producer = f"bridge@{wiring.settings.runtime.host}"
    inbound = Inbound(
        units=wiring.units,
        lookup=BusLookups(Bus(wiring.transport), producer=producer),
        defaults=Defaults(volume_size_bytes=settings.volume_size_bytes, zone_id=settings.zone_id),
        metrics=metrics,
        producer=producer,
    )
    url = settings.amqp_url.get_secret_value() if settings.amqp_url else wiring.settings.bus.amqp_url
    link = CloudStackLink(
        url,
        exchange=settings.exchange,
        queue=cloudstack_queue(wiring.transport.namespace),
        prefetch=settings.prefetch,
        attempts=settings.delivery_attempts,
        reconnect_seconds=settings.reconnect_seconds,
        take_batch=inbound.take_batch,
        record_dead=inbound.dead_lettered,
        dead_letters=wiring.transport,
        metrics=metrics,
    )
    relay = AnswerRelay(wiring.pool, link, metrics)
    inbound.wake = relay.wake
    consumer = Consumer(
        wiring.transport,
        wiring.units,
        name=CONSUMER,
        handlers=bind_context(EVENT_HANDLERS, OutcomeDeps(wake=relay.wake)),
        queue_kind=wiring.settings.bus.queue_kind,
    )
    return Service([consumer, relay, link], checks={"cloudstack": _linked(link)})


DAEMON = Daemon(
    name="bridge",
    summary="CloudStack's event bus in (storage events become commands), strata's outcomes back in its format",
    build=build,
    migrations=(migrate_bridge,),
    queues=(Queue(CONSUMER, tuple(EVENT_HANDLERS)),),
)
