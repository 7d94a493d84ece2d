"""Health that can fail: a daemon started by the runner answers /healthz 503 while its broker connection is down,
its database is unreachable, its outbox backs up, or one of its consumers has stopped, and 200 again after; its
/metrics show the bus (outbox, dead letters), its pools and its plugin calls.

The servers are the real RabbitMQ and PostgreSQL behind TCP proxies, so that a test can cut them and no one else.
Before the runner, `strata run storage` and `run agent` registered no check at all and answered 200 always.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import pytest

from bus.codec import encode
from bus.facade import Bus
from bus.postgres import PostgresUnitOfWorkFactory, RelaySettings
from bus.rabbit import RabbitTransport
from schemas import Envelope
from schemas.snapshot import CreateSnapshot
from schemas.storage import AddPool, PoolScope
from services.agent.settings import AgentSettings
from services.daemons import declared
from services.runtime.daemon import Settings
from services.runtime.health import HealthServer
from services.runtime.runner import Runner
from services.runtime.settings import RuntimeSettings
from tests.bus_fixtures import bus_settings
from tests.helpers import assert_eventually
from tests.integration.plugins_qcow2fs_support import require_qemu_tools
from tests.tcp_proxy import Proxy

pytestmark = pytest.mark.integration
HOST, CLUSTER = "hh1", "hc1"


@dataclass
class Daemon:
    """Daemons run by the runner in this process, their health server, and the proxies in front of the servers."""

    runner: Runner
    health: HealthServer
    broker: Proxy
    database: Proxy
    namespace: str

    async def healthz(self) -> tuple[int, dict[str, str]]:
        status, body = await self._get("/healthz")
        return status, json.loads(body)["checks"]

    async def metrics(self) -> str:
        status, body = await self._get("/metrics")
        assert status == 200
        return body

    async def _get(self, path: str) -> tuple[int, str]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.health.port)
        writer.write(f"GET {path} HTTP/1.1\r\n\r\n".encode())
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 30)
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        return int(head.split()[1]), body.decode()

    async def wait_health(self, status: int, check: str, outcome_ok: bool) -> dict[str, str]:
        """Wait until /healthz answers `status` with `check` ok (or not); return the checks."""

        async def reached() -> dict[str, str] | None:
            answered, checks = await self.healthz()
            matches = answered == status and (checks.get(check) == "ok") is outcome_ok
            return checks if matches else None

        found = await assert_eventually(reached, timeout=30, what=f"/healthz {status} with {check} ok={outcome_ok}")
        assert found is not None
        return found


def proxied(url: str, proxy: Proxy) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.netloc.rsplit('@', 1)[0]}@127.0.0.1:{proxy.port}"))


async def proxy_to(url: str, default_port: int) -> Proxy:
    parts = urlsplit(url)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or default_port)
    await proxy.restore()
    return proxy


@asynccontextmanager
async def start(
    names: list[str],
    database_url: str,
    amqp_url: str,
    namespace: str,
    runtime: RuntimeSettings | None = None,
    undeliverable_after: float = 60.0,
) -> AsyncIterator[Daemon]:
    broker, database = await proxy_to(amqp_url, 5672), await proxy_to(database_url, 5432)
    bus = bus_settings(namespace, proxied(amqp_url, broker)).model_copy(update={"publish_outage_bound": 60.0})
    settings = Settings(bus, runtime or RuntimeSettings(), AgentSettings(host=HOST, cluster=CLUSTER))
    health = HealthServer(port=0, check_timeout=1.0)
    transport = RabbitTransport(bus, purpose="health-test")
    transport.handling.add(health.message_metrics)
    runner = await Runner.start(
        [declared(name) for name in names],
        database_url=proxied(database_url, database),
        transport=transport,
        settings=settings,
        relay=RelaySettings(
            poll_interval=0.1, backoff_initial=0.1, backoff_max=0.5, undeliverable_after=undeliverable_after
        ),
        metrics=health.registry,
    )
    for name, check in runner.checks().items():
        health.add_check(name, check)
    for refresh in runner.refreshers():
        health.add_refresh(refresh)
    await health.start()
    try:
        yield Daemon(runner, health, broker, database, namespace)
    finally:
        await health.close()
        await broker.restore_if_cut()
        await database.restore_if_cut()
        await runner.stop()
        await broker.cut()
        await database.cut()
    await RabbitTransport(bus_settings(namespace, amqp_url)).delete_namespace(
        [f"{namespace}.storage", f"{namespace}.agent.{HOST}", f"{namespace}.agent.cluster.{CLUSTER}"]
    )


@pytest.fixture
async def storage(database_url: str, amqp_url: str, namespace: str) -> AsyncIterator[Daemon]:
    async with start(["storage"], database_url, amqp_url, namespace) as daemon:
        yield daemon


async def test_healthz_names_every_check_and_passes_when_all_is_well(storage: Daemon) -> None:
    status, checks = await storage.healthz()
    assert status == 200, checks
    assert checks == {"broker": "ok", "database": "ok", "outbox": "ok", "consumer storage": "ok"}


async def test_healthz_fails_while_the_broker_is_unreachable(storage: Daemon) -> None:
    await storage.broker.cut()
    checks = await storage.wait_health(503, "broker", outcome_ok=False)
    assert checks["database"] == "ok"
    await storage.broker.restore()
    await storage.wait_health(200, "broker", outcome_ok=True)


async def test_healthz_fails_while_the_database_is_unreachable(storage: Daemon) -> None:
    await storage.database.cut()
    checks = await storage.wait_health(503, "database", outcome_ok=False)
    assert checks["broker"] == "ok"
    await storage.database.restore()
    await storage.wait_health(200, "database", outcome_ok=True)


async def test_healthz_fails_while_a_consumer_has_stopped(storage: Daemon) -> None:
    _name, service = storage.runner.services[0]
    await service.consumers[0].stop()
    checks = await storage.wait_health(503, "consumer storage", outcome_ok=False)
    assert checks["consumer storage"] == "failing"


@pytest.mark.parametrize(
    "limit",
    [RuntimeSettings(health_outbox_backlog_max=0), RuntimeSettings(health_outbox_age_max_seconds=0.001)],
    ids=["backlog", "age"],
)
async def test_healthz_fails_while_the_outbox_backs_up(
    database_url: str, amqp_url: str, namespace: str, limit: RuntimeSettings
) -> None:
    async with start(["storage"], database_url, amqp_url, namespace, limit) as daemon:
        await daemon.wait_health(200, "outbox", outcome_ok=True)
        await emit_unroutable(daemon)  # retried for a minute before it is given up on: it waits in the outbox
        checks = await daemon.wait_health(503, "outbox", outcome_ok=False)
        assert checks["outbox"] == "failing"
        assert "strata_outbox_backlog 1.0" in await daemon.metrics()


async def test_a_command_given_up_on_leaves_the_outbox_and_counts_as_a_dead_letter(
    database_url: str, amqp_url: str, namespace: str
) -> None:
    limit = RuntimeSettings(health_outbox_backlog_max=0)
    async with start(["storage"], database_url, amqp_url, namespace, limit, undeliverable_after=0.5) as daemon:
        await emit_unroutable(daemon)
        await daemon.wait_health(200, "outbox", outcome_ok=True)

        async def dead_letter_counted() -> bool:
            return "strata_dead_letters 1.0" in await daemon.metrics()

        await assert_eventually(dead_letter_counted, timeout=30, what="the undeliverable command's dead letter")
        assert "strata_outbox_backlog 0.0" in await daemon.metrics()


async def emit_unroutable(daemon: Daemon) -> None:
    """Emit a command no queue takes (no snapshot service runs here and its queue was never declared)."""
    command = CreateSnapshot(snapshot_id=uuid4(), volume_id=uuid4(), name="s")
    async with PostgresUnitOfWorkFactory(daemon.runner.pool, encode=encode).begin("health-test", None) as uow:
        assert uow is not None
        uow.emit(Envelope.wrap(command, producer="health-test"))


async def test_metrics_show_the_bus_the_pools_and_the_plugin_calls(
    database_url: str, amqp_url: str, namespace: str, tmp_path: Path
) -> None:
    require_qemu_tools()
    async with start(["storage", "agent"], database_url, amqp_url, namespace) as daemon:
        assert "strata_dead_letters 0.0" in await daemon.metrics()
        command = AddPool(
            pool_id=uuid4(),
            name="metered",
            plugin="qcow2fs",
            config={"path": str(tmp_path)},
            scope=PoolScope.CLUSTER,
            cluster_id=CLUSTER,
            zone_id=uuid4(),
            hypervisors=frozenset({"kvm"}),
        )
        await Bus(daemon.runner.transport).publish(Envelope.wrap(command, producer="health-test"))

        async def pool_shown() -> str | None:
            text = await daemon.metrics()
            shown = 'strata_pool_capacity_bytes{name="metered",pool="' in text and 'state="Up"} ' in text
            return text if shown else None

        text = await assert_eventually(pool_shown, timeout=30, what="the pool's capacity in /metrics")
        assert text is not None
        assert 'strata_plugin_call_seconds_count{call="add_pool",outcome="ok",plugin="qcow2fs"} 1.0' in text
        assert "strata_outbox_oldest_seconds" in text
