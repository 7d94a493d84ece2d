"""`strata run SERVICE` (one daemon) and `strata up` (every daemon in one process), on the servers of STRATA_*.

Both go through the one runner (`services.daemons.serve_daemons`): JSON logs, the deployed topology, migrations,
`/healthz` and `/metrics` on STRATA_HEALTH_HOST:STRATA_HEALTH_PORT, and a graceful shutdown on SIGTERM or SIGINT
(stop consuming, let in-flight messages finish, close). The daemons are the ones `services/daemons.py` declares.
"""

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer

from schemas import StrataError
from services.cli.talking import fail
from services.daemons import EVERY_DAEMON

if TYPE_CHECKING:  # the services are imported when a command runs, so that `strata --help` stays fast
    from services.runtime.daemon import Settings


def _declared_daemon(name: str) -> str:
    if name not in EVERY_DAEMON:
        raise typer.BadParameter(f"no daemon named {name!r}; choose from {', '.join(EVERY_DAEMON)}")
    return name


HostOption = Annotated[str | None, typer.Option(help="The agent's host name (default STRATA_AGENT_HOST).")]
ClusterOption = Annotated[str | None, typer.Option(help="The agent's cluster (default STRATA_AGENT_CLUSTER).")]
ServiceArgument = Annotated[
    str,
    typer.Argument(
        help=f"The daemon to run: {', '.join(EVERY_DAEMON)}.",
        metavar="SERVICE",
        autocompletion=lambda: list(EVERY_DAEMON),
        callback=_declared_daemon,
        show_default=False,
    ),
]


def daemon_settings(host: str | None, cluster: str | None) -> "Settings":
    """The settings of the environment (STRATA_*), with --host and --cluster over the agent's."""
    from services.agent.settings import AgentSettings
    from services.runtime.daemon import Settings

    agent = AgentSettings()
    update = {key: value for key, value in (("host", host), ("cluster", cluster)) if value}
    return Settings(agent.model_copy(update=update))


def run(service: ServiceArgument, host: HostOption = None, cluster: ClusterOption = None) -> None:
    """Run one daemon until SIGTERM or SIGINT.

    It reads its settings from the environment:
    STRATA_AMQP_URL, STRATA_NAMESPACE: the broker and the prefix of its exchanges and queues;
    STRATA_DATABASE_URL: the PostgreSQL of every service; STRATA_SECRET_KEY_FILE: the deployment key;
    STRATA_AGENT_HOST, STRATA_AGENT_CLUSTER, STRATA_AGENT_LIBVIRT_URI, STRATA_AGENT_HEARTBEAT_SECONDS: the agent;
    STRATA_HEALTH_HOST, STRATA_HEALTH_PORT: /healthz and /metrics; STRATA_LOG_LEVEL, STRATA_LOG_JSON: the log.

    Example: strata run agent --host kvm-01 --cluster rack-1
    """
    from services.daemons import serve_daemons

    if (host or cluster) and service != "agent":
        raise typer.BadParameter("only the agent takes --host and --cluster", param_hint="--host/--cluster")
    try:
        asyncio.run(serve_daemons([service], daemon_settings(host, cluster)))
    except StrataError as error:
        fail(error)


def up(host: HostOption = None, cluster: ClusterOption = None) -> None:
    """Run every daemon (storage, snapshot, orchestrator, an agent, ...) in this process until SIGTERM or SIGINT.

    It reads its settings from the environment:
    STRATA_AMQP_URL, STRATA_NAMESPACE: the broker and the prefix of its exchanges and queues;
    STRATA_DATABASE_URL: the PostgreSQL of every service; STRATA_SECRET_KEY_FILE: the deployment key;
    STRATA_AGENT_HOST, STRATA_AGENT_CLUSTER, STRATA_AGENT_LIBVIRT_URI, STRATA_AGENT_HEARTBEAT_SECONDS: the agent;
    STRATA_HEALTH_HOST, STRATA_HEALTH_PORT: /healthz and /metrics; STRATA_LOG_LEVEL, STRATA_LOG_JSON: the log;
    STRATA_BRIDGE_EXCHANGE: CloudStack's event exchange (the bridge runs only when it is set).

    Example: STRATA_NAMESPACE=lab strata up --host kvm-01 --cluster rack-1
    """
    from services.daemons import serve_daemons, together

    try:
        asyncio.run(serve_daemons(together(), daemon_settings(host, cluster), name="up"))
    except StrataError as error:
        fail(error)
