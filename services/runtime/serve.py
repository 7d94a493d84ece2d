"""A daemon process: declared daemons on RabbitMQ and PostgreSQL with JSON logs, `/healthz` and `/metrics`, and a
graceful shutdown on SIGTERM or SIGINT (stop consuming, let in-flight messages finish, close).

`strata run NAME`, `strata up`, `python -m services.NAME` and the e2e daemons all come here (`services.daemons`).
"""

from collections.abc import Sequence

from bus.rabbit import RabbitTransport
from services.runtime.daemon import Daemon, Settings
from services.runtime.health import HealthServer
from services.runtime.logs import configure_logging
from services.runtime.runner import Runner
from services.runtime.shutdown import GracefulShutdown


async def serve(daemons: Sequence[Daemon], settings: Settings, *, name: str, topology: Sequence[Daemon]) -> None:
    """Run `daemons` in this process until SIGTERM or SIGINT, then shut down gracefully.

    `name` names the process in its logs and on the broker; `topology`: the daemons whose queues to declare at start.
    """
    runtime = settings.runtime
    log = configure_logging(name, level=runtime.log_level, json=runtime.log_json)
    shutdown = GracefulShutdown(grace_seconds=runtime.shutdown_grace_seconds)
    shutdown.install_signal_handlers()
    health = HealthServer(host=runtime.health_host, port=runtime.health_port)
    transport = RabbitTransport(settings.bus, purpose=name)
    transport.handling.add(health.message_metrics)  # every consumer of the process counts in /metrics
    runner = await Runner.start(
        daemons,
        database_url=runtime.database_url.get_secret_value(),
        transport=transport,
        settings=settings,
        topology=topology,
        metrics=health.registry,
    )
    # Runner.stop stops the consumers first (in-flight messages finish), then the relay, transport and pool.
    shutdown.on_stop_intake("services", runner.stop)
    for check_name, check in runner.checks().items():
        health.add_check(check_name, check)
    for refresh in runner.refreshers():
        health.add_refresh(refresh)
    try:
        await health.start()
    except BaseException:
        await runner.stop()
        raise
    shutdown.on_close("health server", health.close)
    log.info(
        "running",
        services=[running for running, _ in runner.services],
        health_port=health.port,
        namespace=settings.bus.namespace,
    )
    await shutdown.run()
