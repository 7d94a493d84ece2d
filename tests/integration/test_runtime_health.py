"""The health and metrics server answers over real HTTP: /healthz with each check, /metrics in Prometheus' format."""

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from bus.facade import Bus
from bus.memory import MemoryTransport
from bus.memory_uow import MemoryUnitOfWorkFactory
from bus.ports import UnitOfWork
from bus.runtime import Consumer
from schemas import Envelope, Message
from services.runtime.health import HealthServer
from tests.bus_fixtures import Ping, bus_test_messages
from tests.helpers import assert_eventually

pytestmark = pytest.mark.integration


async def get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body


async def healthy() -> bool:
    return True


@pytest.fixture
async def server() -> AsyncIterator[HealthServer]:
    async with HealthServer(port=0, checks={"database": healthy}, check_timeout=0.5) as running:
        yield running


async def test_healthz_answers_ok_when_every_check_passes(server: HealthServer) -> None:
    status, headers, body = await get(server.port, "/healthz")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"status": "ok", "checks": {"database": "ok"}}


async def test_healthz_answers_503_naming_the_failing_check(server: HealthServer) -> None:
    async def consumer_down() -> bool:
        return False

    async def broken() -> bool:
        raise ConnectionRefusedError("postgresql://admin:hunter2@db/strata refused")

    async def stuck() -> bool:
        await asyncio.Event().wait()
        return True

    server.add_check("consumer", consumer_down)
    server.add_check("broker", broken)
    server.add_check("slow", stuck)
    status, _, body = await get(server.port, "/healthz")
    assert status == 503
    answer = json.loads(body)
    assert answer == {
        "status": "failing",
        "checks": {
            "database": "ok",
            "consumer": "failing",
            "broker": "error: ConnectionRefusedError",
            "slow": "timed out after 0.5s",
        },
    }
    assert b"hunter2" not in body


async def test_metrics_are_in_prometheus_text_format(server: HealthServer) -> None:
    metrics = server.message_metrics
    metrics.record("storage", "volume.create", "ok")
    metrics.record("storage", "volume.create", "ok")
    metrics.record("snapshot", "snapshot.create", "dead")
    with metrics.handling("storage", "volume.create"):
        pass
    status, headers, body = await get(server.port, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=")
    families = {family.name: family for family in text_string_to_metric_families(body.decode())}
    handled = {
        (sample.labels["service"], sample.labels["type"], sample.labels["outcome"]): sample.value
        for sample in families["strata_messages_handled"].samples
        if sample.name.endswith("_total")
    }
    assert handled == {("storage", "volume.create", "ok"): 2.0, ("snapshot", "snapshot.create", "dead"): 1.0}
    counts = [s for s in families["strata_message_handling_seconds"].samples if s.name.endswith("_count")]
    assert [(s.labels["service"], s.value) for s in counts] == [("storage", 1.0)]
    in_flight = families["strata_messages_in_flight"].samples
    assert [(s.labels["service"], s.value) for s in in_flight] == [("storage", 0.0)]


async def test_each_server_has_its_own_registry() -> None:
    registry = CollectorRegistry()
    Counter("strata_test_only", "A metric of this test only.", registry=registry).inc()
    async with HealthServer(registry=registry) as mine, HealthServer() as other:
        _, _, body = await get(mine.port, "/metrics")
        _, _, other_body = await get(other.port, "/metrics")
    assert b"strata_test_only_total 1.0" in body
    assert b"strata_test_only" not in other_body


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/", 404), ("GET", "/admin", 404), ("POST", "/healthz", 405), ("DELETE", "/metrics", 405)],
)
async def test_other_paths_and_methods_are_refused(server: HealthServer, method: str, path: str, status: int) -> None:
    assert (await get(server.port, path, method))[0] == status


async def test_head_and_query_strings_work(server: HealthServer) -> None:
    assert (await get(server.port, "/healthz?verbose=1"))[0] == 200
    status, headers, body = await get(server.port, "/healthz", "HEAD")
    assert (status, body) == (200, b"")
    assert int(headers["Content-Length"]) > 0


async def test_a_garbled_request_gets_400_and_the_server_goes_on(server: HealthServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"nonsense\r\n\r\n")
    await writer.drain()
    assert (await reader.read()).startswith(b"HTTP/1.1 400 ")
    writer.close()
    assert (await get(server.port, "/healthz"))[0] == 200


async def test_a_client_that_hangs_up_does_not_stop_the_server(server: HealthServer) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.close()
    await writer.wait_closed()
    assert (await get(server.port, "/healthz"))[0] == 200


async def test_port_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = HealthServer().port


async def test_every_consumer_of_the_transport_reports_to_metrics(
    server: HealthServer, memory_transport: MemoryTransport
) -> None:
    async def ping(message: Message, envelope: Envelope, uow: UnitOfWork) -> None:
        assert isinstance(message, Ping)
        if message.n == 2:
            raise ValueError("a permanent failure")

    memory_transport.handling.add(server.message_metrics)
    consumer = Consumer(
        memory_transport,
        MemoryUnitOfWorkFactory(Bus(memory_transport, messages=bus_test_messages)),
        name="pinger",
        handlers={Ping: ping},
        messages=bus_test_messages,
    )
    await consumer.start()
    bus = Bus(memory_transport, messages=bus_test_messages)
    first = Envelope.wrap(Ping(n=1), producer="test")
    for envelope in (first, first, Envelope.wrap(Ping(n=2), producer="test")):
        await bus.publish(envelope)

    async def handled() -> dict[str, float] | None:
        _, _, body = await get(server.port, "/metrics")
        families = {family.name: family for family in text_string_to_metric_families(body.decode())}
        samples = {
            sample.labels["outcome"]: sample.value
            for sample in families["strata_messages_handled"].samples
            if sample.name.endswith("_total") and sample.labels["service"] == "pinger"
        }
        return samples if sum(samples.values()) == 3 else None

    outcomes = await assert_eventually(handled, what="three pings counted")
    await consumer.stop()
    assert outcomes == {"ok": 1.0, "duplicate": 1.0, "dead": 1.0}
