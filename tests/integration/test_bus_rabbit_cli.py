"""`strata dlq` and `strata events tail` against the real RabbitMQ, run as an operator would run them."""

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from uuid import uuid4

import pytest

from bus.codec import encode
from bus.errors import Unroutable
from bus.ports import Binding, Delivery
from bus.rabbit import RabbitTransport
from bus.topology import DEATH_REASON_HEADER
from plugins.sdk.processes import kill_and_reap
from schemas import Envelope
from schemas.storage import AddPool, PoolScope
from tests.bus_fixtures import Ping, Pinged
from tests.helpers import assert_eventually

pytestmark = pytest.mark.integration
STRATA = str(Path(sys.executable).with_name("strata"))


def strata_env(transport: RabbitTransport) -> dict[str, str]:
    return {**os.environ, "STRATA_AMQP_URL": transport.settings.amqp_url, "STRATA_NAMESPACE": transport.namespace}


# The whole `strata` command imports every service's CLI; the group alone starts in a fraction of the time. The
# first call of each test goes through `strata` itself, to prove the wiring.
GROUP = {"dlq": "from services.cli.dlq import app", "events": "from services.cli.events import app"}


async def strata(transport: RabbitTransport, *args: str, whole: bool = False) -> tuple[int, str]:
    group, rest = args[0], args[1:]
    command = [STRATA, *args] if whole else [sys.executable, "-c", f"{GROUP[group]}; app()", *rest]
    process = await asyncio.create_subprocess_exec(
        *command, env=strata_env(transport), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


async def test_dlq_lists_shows_redrives_and_purges(rabbit_transport: RabbitTransport) -> None:
    queue = await rabbit_transport.declare_queue("svc", [Binding("commands", "bustest.ping")])
    redriven: list[Delivery] = []
    fixed = {"yet": False}

    async def kill_then_keep(delivery: Delivery) -> None:
        if fixed["yet"]:
            redriven.append(delivery)
            await delivery.ack()
        else:
            await delivery.dead_letter({DEATH_REASON_HEADER: "disk on fire"})

    await rabbit_transport.consume(queue, kill_then_keep, prefetch=4)
    first, second = (encode(Envelope.wrap(Ping(n=n))) for n in (1, 2))
    await rabbit_transport.publish("commands", "bustest.ping", first)
    await rabbit_transport.publish("commands", "bustest.ping", second)

    async def two_dead() -> bool:
        return len(await rabbit_transport.list_dead()) == 2

    condition: Callable[[], Awaitable[bool] | bool] = two_dead
    await assert_eventually(condition)

    code, out = await strata(rabbit_transport, "dlq", "list", "--json", whole=True)
    assert code == 0, out
    listed = json.loads(out)
    assert {item["message_id"] for item in listed} == {first.message_id, second.message_id}
    assert all(item["reason"] == "disk on fire" and item["origin_queue"] == queue for item in listed)

    code, out = await strata(rabbit_transport, "dlq", "show", first.message_id, "--json")
    assert code == 0, out
    assert json.loads(out)["body"] == {"n": 1, "text": ""}

    code, out = await strata(rabbit_transport, "dlq", "redrive")
    assert code == 2, "redrive without ids or --all is refused"
    assert len(await rabbit_transport.list_dead()) == 2, "and changes nothing"

    fixed["yet"] = True  # the fault is fixed: a re-driven message is handled this time
    code, out = await strata(rabbit_transport, "dlq", "redrive", first.message_id, "--json")
    assert code == 0, out
    assert json.loads(out) == {"redriven": 1}
    await assert_eventually(lambda: [d.message.message_id for d in redriven] == [first.message_id])
    code, out = await strata(rabbit_transport, "dlq", "purge", "--all")
    assert code == 1, "purging everything asks first, and no one can answer here"
    assert "needs --yes" in out
    assert len(await rabbit_transport.list_dead()) == 1, "and nothing was purged"
    code, out = await strata(rabbit_transport, "dlq", "purge", "--all", "--yes", "--json")
    assert code == 0, out
    assert json.loads(out) == {"purged": 1}
    assert await rabbit_transport.list_dead() == []


async def test_events_tail_prints_the_matching_messages(rabbit_transport: RabbitTransport) -> None:
    await rabbit_transport.declare_queue("audit", [Binding("events", "bustest.pinged")])
    wanted = uuid4()
    process = await asyncio.create_subprocess_exec(
        STRATA,
        *("events", "tail", "--type", "bustest.pinged", "--correlation", str(wanted), "--count", "1", "--json"),
        env=strata_env(rabbit_transport),
        stdout=asyncio.subprocess.PIPE,
    )

    async def publish_until_seen() -> bool:
        # The tail binds its private queue after it starts; until then what we publish passes it by.
        await rabbit_transport.publish("events", "bustest.pinged", encode(Envelope.wrap(Pinged(n=0))))
        await rabbit_transport.publish(
            "events", "bustest.pinged", encode(Envelope.wrap(Pinged(n=1), correlation_id=wanted))
        )
        return process.returncode is not None

    condition: Callable[[], Awaitable[bool] | bool] = publish_until_seen
    try:
        await assert_eventually(condition, timeout=20, interval=0.2, what="the tail printed its one message")
        out, _ = await process.communicate()
    finally:
        await kill_and_reap(process)
    [line] = out.decode().splitlines()
    shown = json.loads(line)
    assert shown["type"] == "bustest.pinged"
    assert shown["correlation_id"] == str(wanted)
    assert shown["payload"] == {"n": 1}


POOL_PASSWORD = "pool-Pa55-hunter2"


def add_pool_with_a_password() -> Envelope:
    config = {"server": "10.0.0.5", "password": POOL_PASSWORD, "export": f"nfs://admin:{POOL_PASSWORD}@filer/x"}
    command = AddPool(pool_id=uuid4(), name="nfs1", plugin="nfs", config=config, scope=PoolScope.ZONE, zone_id=uuid4())
    return Envelope.wrap(command)


async def test_dlq_show_and_list_mask_a_pool_password(rabbit_transport: RabbitTransport) -> None:
    queue = await rabbit_transport.declare_queue("storage", [Binding("commands", "pool.add")])

    async def die(delivery: Delivery) -> None:
        await delivery.dead_letter({DEATH_REASON_HEADER: f"cannot mount nfs://admin:{POOL_PASSWORD}@filer/x"})

    await rabbit_transport.consume(queue, die, prefetch=4)
    wire = encode(add_pool_with_a_password())
    await rabbit_transport.publish("commands", "pool.add", wire)

    async def dead() -> bool:
        return len(await rabbit_transport.list_dead()) == 1

    await assert_eventually(dead)
    for args in (("show", wire.message_id, "--json"), ("show", wire.message_id), ("list", "--json"), ("list",)):
        code, out = await strata(rabbit_transport, "dlq", *args)
        assert code == 0, out
        assert POOL_PASSWORD not in out, args
    code, out = await strata(rabbit_transport, "dlq", "show", wire.message_id, "--json")
    assert json.loads(out)["body"]["name"] == "nfs1", "what is not secret is still shown"


async def test_events_tail_never_makes_a_command_look_delivered(rabbit_transport: RabbitTransport) -> None:
    # Before: the tail bound its queue to the commands exchange too, so a command that no service took (here a pool
    # add with no storage service running) was routed to the tail alone, and the outbox took it as delivered.
    await rabbit_transport.declare_queue("audit", [Binding("events", "bustest.pinged")])
    process = await asyncio.create_subprocess_exec(
        STRATA,
        *("events", "tail", "--type", "pool.add", "--type", "bustest.pinged", "--count", "2", "--json"),
        env=strata_env(rabbit_transport),
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    first_line = asyncio.ensure_future(process.stdout.readline())

    async def publish_until_seen() -> bool:
        # The tail binds its private queue after it starts; once it printed an event, it is bound.
        await rabbit_transport.publish("events", "bustest.pinged", encode(Envelope.wrap(Pinged(n=0))))
        return first_line.done()

    condition: Callable[[], Awaitable[bool] | bool] = publish_until_seen
    try:
        await assert_eventually(condition, timeout=20, interval=0.2, what="the tail printed an event")
        with pytest.raises(Unroutable):
            await rabbit_transport.publish("commands", "pool.add", encode(add_pool_with_a_password()))
        await rabbit_transport.publish("events", "bustest.pinged", encode(Envelope.wrap(Pinged(n=1))))
        out, _ = await process.communicate()
    finally:
        await kill_and_reap(process)
    assert POOL_PASSWORD not in (await first_line).decode() + out.decode()
    assert all(json.loads(line)["type"] == "bustest.pinged" for line in out.decode().splitlines())
