"""`strata run SERVICE` (one daemon) and `strata up` (every daemon in one process), on the servers of STRATA_*.

`run storage` and `run agent` are their bootstraps' own `run`. `run snapshot`, `run orchestrator` and `up` are
the services' embeddable builds (services/stack) in a daemon here, with the same runtime as the others: JSON logs,
`/healthz` (database and broker checks) and `/metrics` on STRATA_HEALTH_HOST:STRATA_HEALTH_PORT, and a graceful
shutdown on SIGTERM or SIGINT (stop consuming, let in-flight messages finish, close).
"""

import asyncio
from collections.abc import Collection
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from schemas import StrataError
from services.cli.talking import fail

if TYPE_CHECKING:  # the services are imported when a command runs, so that `strata --help` stays fast
    from bus.settings import BusSettings
    from services.agent.settings import AgentSettings
    from services.runtime.settings import RuntimeSettings


class Service(StrEnum):
    """The daemons `strata run` starts."""

    STORAGE = "storage"
    SNAPSHOT = "snapshot"
    ORCHESTRATOR = "orchestrator"
    AGENT = "agent"


HostOption = Annotated[str | None, typer.Option(help="The agent's host name (default STRATA_AGENT_HOST).")]
ClusterOption = Annotated[str | None, typer.Option(help="The agent's cluster (default STRATA_AGENT_CLUSTER).")]


def agent_settings(host: str | None, cluster: str | None) -> "AgentSettings":
    """The agent's settings from STRATA_AGENT_*, with --host and --cluster over them."""
    from services.agent.settings import AgentSettings

    defaults = AgentSettings()
    update = {key: value for key, value in (("host", host), ("cluster", cluster)) if value}
    return defaults.model_copy(update=update)


def run(
    service: Annotated[Service, typer.Argument(help="The daemon to run.")],
    host: HostOption = None,
    cluster: ClusterOption = None,
) -> None:
    """Run one daemon until SIGTERM or SIGINT."""
    from services.runtime.settings import RuntimeSettings

    try:
        settings = RuntimeSettings()
        if service is Service.AGENT:
            from services.agent.bootstrap import run as run_agent

            asyncio.run(run_agent(agent_settings(host, cluster), settings))
        elif service is Service.STORAGE:
            from services.storage.bootstrap import run as run_storage

            asyncio.run(run_storage(settings))
        else:
            if host or cluster:
                raise typer.BadParameter("only the agent takes --host and --cluster", param_hint="--host/--cluster")
            asyncio.run(daemon(settings, only=(service.value,), name=service.value))
    except StrataError as error:
        fail(error)


def up(host: HostOption = None, cluster: ClusterOption = None) -> None:
    """Run every daemon (storage, snapshot, orchestrator, an agent) in this process until SIGTERM or SIGINT."""
    from services.runtime.settings import RuntimeSettings
    from services.stack import EVERY_SERVICE

    try:
        asyncio.run(daemon(RuntimeSettings(), only=EVERY_SERVICE, name="up", agent=agent_settings(host, cluster)))
    except StrataError as error:
        fail(error)


async def daemon(
    settings: "RuntimeSettings",
    *,
    only: Collection[str],
    name: str,
    agent: "AgentSettings | None" = None,
    bus: "BusSettings | None" = None,
) -> None:
    """Run the services in `only` on RabbitMQ and PostgreSQL from the settings, with health, metrics and a
    graceful shutdown."""
    from bus.rabbit import RabbitTransport
    from bus.settings import BusSettings
    from services.agent.settings import AgentSettings
    from services.runtime.health import HealthServer
    from services.runtime.logs import configure_logging
    from services.runtime.shutdown import GracefulShutdown
    from services.stack import Placement, System

    log = configure_logging(name, level=settings.log_level, json=settings.log_json)
    agent = agent or AgentSettings()
    bus = bus or BusSettings()
    shutdown = GracefulShutdown(grace_seconds=settings.shutdown_grace_seconds)
    shutdown.install_signal_handlers()
    transport = RabbitTransport(bus, purpose=name)
    system = await System.start(
        settings.database_url.get_secret_value(),
        transport,
        settings=settings,
        placement=Placement(host=agent.host, cluster=agent.cluster, libvirt_uri=agent.libvirt_uri),
        only=only,
        relay_poll=1.0,
    )
    # System.stop stops the consumers first (in-flight messages finish), then the relay, transport and pool.
    shutdown.on_stop_intake("services", system.stop)
    health = HealthServer(host=settings.health_host, port=settings.health_port)

    async def database_answers() -> bool:
        async with system.pool.acquire() as connection:
            return bool(await connection.fetchval("SELECT 1"))

    health.add_check("database", database_answers)
    await health.start()
    shutdown.on_close("health server", health.close)
    log.info(
        "running",
        services=[running for running, _ in system.services],
        health_port=health.port,
        namespace=bus.namespace,
    )
    await shutdown.run()
