"""The only place that builds the agent's adapters and wires them: `build_agent` on a given transport and unit of
work factory (the demo runs it in-process on the memory transport), `run` as a daemon on RabbitMQ and PostgreSQL.

The agent consumes two queues: `<ns>.agent.<host>` bound to `agent.host.<host>.#`, and the cluster's shared
`<ns>.agent.cluster.<cluster>` bound to `agent.cluster.<cluster>.#`, where the agents of a cluster compete.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

from bus.codec import encode
from bus.ports import Binding, Handler, Transport, UnitOfWorkFactory
from bus.postgres import OutboxRelay, PostgresUnitOfWorkFactory, create_pool, migrate
from bus.rabbit import RabbitTransport
from bus.runtime import Consumer
from bus.settings import BusSettings
from plugins.registry import Registry, load_plugins
from plugins.sdk import faults
from schemas import Message, MessageRegistry, registry
from schemas.agent import routing_word
from services.agent.answering import Agent
from services.agent.drivers import PoolDrivers
from services.agent.handlers import COMMAND_HANDLERS
from services.agent.libvirt_hypervisor import LibvirtHypervisor
from services.agent.ports import Hypervisor
from services.agent.schema import migrate_agent
from services.agent.settings import AgentSettings
from services.runtime.handlers import bind_context
from services.runtime.health import HealthServer
from services.runtime.logs import configure_logging
from services.runtime.sealing import SecretSealer
from services.runtime.settings import RuntimeSettings
from services.runtime.shutdown import GracefulShutdown

log = structlog.get_logger(__name__)


class RoutedConsumer(Consumer):
    """A consumer whose queue is bound by routing-key patterns instead of by the types of its handler table."""

    def __init__(
        self,
        transport: Transport,
        units: UnitOfWorkFactory,
        *,
        name: str,
        handlers: Mapping[type[Message], Handler],
        patterns: list[str],
        prefetch: int,
        messages: MessageRegistry,
    ) -> None:
        super().__init__(transport, units, name=name, handlers=handlers, prefetch=prefetch, messages=messages)
        self.patterns = patterns

    def bindings(self) -> list[Binding]:
        """Every pattern on the commands exchange."""
        return [Binding("commands", pattern) for pattern in self.patterns]


@dataclass
class AgentService:
    """A running agent: its two consumers and what they use."""

    agent: Agent
    consumers: list[Consumer] = field(default_factory=list)

    async def start(self) -> None:
        """Start consuming the host's and the cluster's queues."""
        for consumer in self.consumers:
            await consumer.start()
        log.info("agent started", host=self.agent.host, cluster=self.agent.cluster)

    async def stop(self) -> None:
        """Stop consuming (in-flight commands finish), then close the drivers and the hypervisor connection."""
        for consumer in reversed(self.consumers):
            await consumer.stop()
        await self.agent.drivers.close()
        await self.agent.hypervisor.close()


def handler_table(agent: Agent) -> Mapping[type[Message], Handler]:
    """The agent's handler table with the agent bound to every handler."""
    return bind_context(COMMAND_HANDLERS, agent)


def build_agent(
    transport: Transport,
    units: UnitOfWorkFactory,
    *,
    host: str,
    cluster: str,
    hypervisor: Hypervisor,
    plugins: Registry,
    sealer: SecretSealer,
    prefetch: int = 16,
    messages: MessageRegistry = registry,
) -> AgentService:
    """Wire an agent on the given adapters (not started). Its tables must exist (`migrate_agent`)."""
    agent = Agent(host=host, cluster=cluster, drivers=PoolDrivers(plugins, sealer), hypervisor=hypervisor, units=units)
    handlers = handler_table(agent)
    host_consumer = RoutedConsumer(
        transport,
        units,
        name=f"agent.{host}",
        handlers=handlers,
        prefetch=prefetch,
        messages=messages,
        patterns=[f"agent.host.{routing_word(host)}.#"],
    )
    cluster_consumer = RoutedConsumer(
        transport,
        units,
        name=f"agent.cluster.{cluster}",
        handlers=handlers,
        prefetch=prefetch,
        messages=messages,
        patterns=[f"agent.cluster.{routing_word(cluster)}.#"],
    )
    return AgentService(agent, [host_consumer, cluster_consumer])


async def run(settings: AgentSettings, runtime: RuntimeSettings, bus_settings: BusSettings | None = None) -> None:
    """Run the agent until SIGTERM or SIGINT: migrate, connect, consume, then shut down gracefully."""
    configure_logging(f"agent@{settings.host}", level=runtime.log_level, json=runtime.log_json)
    for point in settings.fault_points:
        faults.arm(point)
    sealer = SecretSealer.from_file(runtime.secret_key_file)  # before connecting: a bad key file fails at once
    database_url = runtime.database_url.get_secret_value()
    shutdown = GracefulShutdown(grace_seconds=runtime.shutdown_grace_seconds)
    shutdown.install_signal_handlers()
    pool = await create_pool(database_url, min_size=1, max_size=8)
    shutdown.on_close("database pool", pool.close)
    async with pool.acquire() as connection:
        await migrate(connection)
        await migrate_agent(connection)
    transport = RabbitTransport(bus_settings or BusSettings(), purpose=f"agent-{settings.host}")
    await transport.start()
    shutdown.on_close("transport", transport.close)
    relay = OutboxRelay(pool, transport, database_url=database_url)
    await relay.start()
    shutdown.on_close("outbox relay", relay.stop)
    service = build_agent(
        transport,
        PostgresUnitOfWorkFactory(pool, encode=encode),
        host=settings.host,
        cluster=settings.cluster,
        hypervisor=LibvirtHypervisor(settings.libvirt_uri),
        plugins=load_plugins(),
        sealer=sealer,
    )
    await service.start()
    shutdown.on_stop_intake("agent consumers", service.stop)
    health = HealthServer(host=runtime.health_host, port=runtime.health_port)
    await health.start()
    shutdown.on_close("health server", health.close)
    log.info("agent running", host=settings.host, cluster=settings.cluster, health_port=health.port)
    await shutdown.run()
