"""A daemon process: declared daemons on RabbitMQ and PostgreSQL with JSON logs, `/healthz` and `/metrics`, and a
graceful shutdown on SIGTERM or SIGINT (stop consuming, let in-flight messages finish, close).

`strata run NAME`, `strata up`, `python -m services.NAME` and the e2e daemons all come here (`services.daemons`).
"""

import gc
from collections.abc import Sequence

from bus.rabbit import RabbitTransport
from services.runtime.daemon import Daemon, Settings
from services.runtime.health import HealthServer
from services.runtime.logs import configure_logging
from services.runtime.runner import Runner
from services.runtime.shutdown import GracefulShutdown


def freeze_startup_heap() -> int:
    """Move what the process holds once started (modules, models, schemas: well over 100 000 objects) out of the
    cyclic garbage collector's reach, after one collection; return how many objects that is.

    They live as long as the process, yet every full collection walked them all: the bridge made a full collection
    about every 2000 CloudStack events, 100 ms each under load (50 us an event, half as much as parsing it).
    Objects made afterwards are collected as before; a frozen one freed later is still freed by its reference count.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


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
    freeze_startup_heap()
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
