"""The agent daemon, declared (`DAEMON`): the only place that builds the agent's adapters.

The agent consumes two queues: `<ns>.agent.<host>` bound to `agent.host.<host>.#`, and the cluster's shared
`<ns>.agent.cluster.<cluster>` bound to `agent.cluster.<cluster>.#`, where the agents of a cluster compete. Both are
the host's own, so the agent declares them when it starts (they are not in the shared topology).
`build_agent` wires it on a given transport and units of work (tests run it so); the runner builds it from the
process's wiring for `strata run agent --host H --cluster C`, `strata up` and the demo.
"""

from collections.abc import Mapping

from bus.ports import Binding, Handler, QueueKind, Transport, UnitOfWorkFactory, handler_deadline
from bus.postgres import PostgresUnitOfWorkFactory
from bus.runtime import Consumer
from plugins.registry import Registry
from plugins.sdk import faults
from schemas import Message, MessageRegistry, registry
from schemas.agent import routing_word
from schemas.hosts import HostIdentity
from services.agent.answering import Agent
from services.agent.drivers import PoolDrivers
from services.agent.handlers import COMMAND_HANDLERS, EVENT_HANDLERS
from services.agent.heartbeat import Heartbeat, strata_version
from services.agent.libvirt_hypervisor import LibvirtHypervisor
from services.agent.operations import StagedUnits
from services.agent.ports import Hypervisor
from services.agent.schema import migrate_agent
from services.agent.settings import DEFAULT_OPERATION_DEADLINE_SECONDS, AgentSettings
from services.agent.staging import StagingArea
from services.agent.timing import PluginCallMetrics
from services.runtime.daemon import Daemon, Service, Settings, Wiring
from services.runtime.handlers import bind_context
from services.runtime.sealing import SecretSealer

HANDLERS = {**COMMAND_HANDLERS, **EVENT_HANDLERS}


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
        queue_kind: QueueKind,
        messages: MessageRegistry,
    ) -> None:
        super().__init__(
            transport, units, name=name, handlers=handlers, prefetch=prefetch, queue_kind=queue_kind, messages=messages
        )
        self.patterns = patterns

    def bindings(self) -> list[Binding]:
        """Every pattern on the commands exchange."""
        return [Binding("commands", pattern) for pattern in self.patterns]


def build_agent(
    transport: Transport,
    units: UnitOfWorkFactory,
    *,
    host: str,
    cluster: str,
    hypervisor: Hypervisor,
    plugins: Registry,
    sealer: SecretSealer,
    calls: PluginCallMetrics | None = None,
    prefetch: int = 16,
    queue_kind: QueueKind = QueueKind.QUORUM,
    messages: MessageRegistry = registry,
    identity: HostIdentity | None = None,
    heartbeat_seconds: float = 30.0,
    deadline_seconds: float = DEFAULT_OPERATION_DEADLINE_SECONDS,
) -> Service:
    """Wire an agent on the given adapters (not started). Its tables must exist (`migrate_agent`).

    Its heartbeat registers `identity` (default: the host and cluster, kvm, the hypervisor's URI) with the storage
    service when it starts, and then every `heartbeat_seconds`. With `calls`, every plugin call is timed.

    Its consumers get staged units of work (`services.agent.operations`): no transaction stays open across a plugin
    call. With PostgreSQL units, the intent and what a handler reads or writes during its work use their pool.
    """
    agent = Agent(
        host=host,
        cluster=cluster,
        drivers=PoolDrivers(plugins, sealer, calls),
        hypervisor=hypervisor,
        units=units,
        staging=StagingArea(host),
        deadline_seconds=deadline_seconds,
    )
    asks = handler_deadline(agent.handler_deadline_seconds)
    handlers = {model: asks(handler) for model, handler in bind_context(HANDLERS, agent).items()}
    staged = StagedUnits(units, units.pool if isinstance(units, PostgresUnitOfWorkFactory) else None)
    consumers = [
        RoutedConsumer(
            transport,
            staged,
            name=name,
            handlers=handlers,
            prefetch=prefetch,
            queue_kind=queue_kind,
            messages=messages,
            patterns=[pattern],
        )
        for name, pattern in (
            (f"agent.{host}", f"agent.host.{routing_word(host)}.#"),
            (f"agent.cluster.{cluster}", f"agent.cluster.{routing_word(cluster)}.#"),
        )
    ]
    identity = identity or HostIdentity(
        host=host,
        cluster_id=cluster,
        hypervisor="kvm",
        libvirt_uri=hypervisor.uri if isinstance(hypervisor, LibvirtHypervisor) else "",
        version=strata_version(),
    )
    heartbeat = Heartbeat(transport, identity, hypervisor, interval=heartbeat_seconds)
    # After the consumers stopped (in-flight commands finished): the drivers, then the hypervisor connection.
    # The staging area first: what a killed agent of this host left is removed before commands are taken.
    return Service([agent.staging_area, *consumers, heartbeat], on_stop=[agent.drivers.close, agent.hypervisor.close])


def check(settings: Settings) -> None:
    """Before connecting: read the deployment key (a bad key file fails at once) and arm the fault points asked."""
    SecretSealer.from_file(settings.runtime.secret_key_file)
    for point in settings.get(AgentSettings).fault_points:
        faults.arm(point)


def build(wiring: Wiring) -> Service:
    """The agent of STRATA_AGENT_HOST in STRATA_AGENT_CLUSTER (or `--host`, `--cluster`) on the process's wiring."""
    settings = wiring.settings.get(AgentSettings)
    return build_agent(
        wiring.transport,
        wiring.units,
        host=settings.host,
        cluster=settings.cluster,
        hypervisor=LibvirtHypervisor(settings.libvirt_uri),
        plugins=wiring.plugins,
        sealer=SecretSealer.from_file(wiring.settings.runtime.secret_key_file),
        calls=PluginCallMetrics(wiring.metrics),
        queue_kind=wiring.settings.bus.queue_kind,
        identity=HostIdentity(
            host=settings.host,
            cluster_id=settings.cluster,
            zone=settings.zone,
            hypervisor=settings.hypervisor,
            libvirt_uri=settings.libvirt_uri,
            version=strata_version(),
        ),
        heartbeat_seconds=settings.heartbeat_seconds,
        deadline_seconds=settings.operation_deadline_seconds,
    )


DAEMON = Daemon(
    name="agent",
    summary="one per host: runs the data-plane commands where the storage is, and drives the hypervisor",
    build=build,
    migrations=(migrate_agent,),
    check=check,
    label=lambda settings: f"agent@{settings.get(AgentSettings).host}",
)
