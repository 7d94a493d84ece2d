"""`strata replay --status dead-lettered` and `redrive --dead-letters` on the real RabbitMQ and PostgreSQL: a command
sent through the outbox (so journaled) that its handler refuses for good lands in the dead letters; the replay tool
finds its operation, previews the re-drive to its origin queue, and with --execute sends it back and journals it."""

import asyncio
import json
from uuid import uuid4

import pytest
from typer.testing import CliRunner

from bus.codec import encode
from bus.postgres import OutboxRelay, PostgresUnitOfWorkFactory, RelaySettings, create_pool, migrate
from bus.rabbit import RabbitTransport
from bus.runtime import Consumer
from schemas import Envelope
from schemas.errors import InvalidArgument
from services.cli.main import app
from tests.bus_fixtures import bus_settings
from tests.helpers import assert_eventually
from tests.integration.bus_postgres_support import AddItem

pytestmark = pytest.mark.integration


async def _dead_letter(database_url: str, amqp_url: str, namespace: str) -> tuple[Envelope, int]:
    """Send AddItem through the outbox to a consumer that refuses it; return it once it is a dead letter."""
    pool = await create_pool(database_url)
    async with pool.acquire() as connection:
        await migrate(connection)
    transport = RabbitTransport(bus_settings(namespace, amqp_url), purpose="test")
    await transport.start()
    relay = OutboxRelay(pool, transport, database_url=database_url, settings=RelaySettings(poll_interval=0.05))
    units = PostgresUnitOfWorkFactory(pool, encode=encode)
    handled: list[Envelope] = []

    async def refuse(command: AddItem, envelope: Envelope, uow: object) -> None:
        handled.append(envelope)
        raise InvalidArgument("this item cannot be added", field="item_id")

    consumer = Consumer(transport, units, name="items", handlers={AddItem: refuse})
    await consumer.start()
    await relay.start()
    try:
        command = Envelope.wrap(AddItem(item_id=uuid4()), producer="cli@ops")
        async with units.begin("cli", None) as uow:
            assert uow is not None
            uow.emit(command)
        await assert_eventually(transport.count_dead, timeout=20, what="the refused command in the dead letters")
        return command, len(handled)
    finally:
        await relay.stop()
        await consumer.stop()
        await transport.close()
        await pool.close()


def test_a_dead_letter_is_found_previewed_and_sent_back_journaled(
    database_url: str, amqp_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    command, tries = asyncio.run(_dead_letter(database_url, amqp_url, namespace))
    assert tries == 1
    for name, value in {"STRATA_DATABASE_URL": database_url, "STRATA_AMQP_URL": amqp_url}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("STRATA_NAMESPACE", namespace)
    runner = CliRunner()
    try:
        found = runner.invoke(app, ["replay", "--status", "dead-lettered", "--json"])
        preview = runner.invoke(app, ["replay", "--status", "dead-lettered", "redrive", "--dead-letters"])
        sent = runner.invoke(
            app, ["replay", "--status", "dead-lettered", "redrive", "--dead-letters", "--execute", "--operator", "ops"]
        )
        journaled = runner.invoke(app, ["replay", "--type", "replay.redriven", "--json"])

        assert found.exit_code == 0, found.output
        assert [json.loads(line)["message_id"] for line in found.stdout.splitlines()] == [str(command.message_id)]
        assert preview.exit_code == 0, preview.output
        assert "dead letter" in preview.stdout
        assert f"{namespace}.items" in preview.stdout
        assert "nothing sent" in preview.stdout
        assert sent.exit_code == 0, sent.output
        assert "re-drove 1 dead letter(s)" in sent.stdout
        record = json.loads(journaled.stdout)
        assert record["payload"]["dead_letters"] == [str(command.message_id)]
        assert record["producer"] == "replay@ops"
        assert amqp_url not in sent.output
    finally:

        async def clean() -> None:
            transport = RabbitTransport(bus_settings(namespace, amqp_url), purpose="test")
            await transport.start()
            await transport.close()
            await transport.delete_namespace([f"{namespace}.items"])

        asyncio.run(clean())
