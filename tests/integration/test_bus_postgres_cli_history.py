"""`strata events history` reads the journal of a real PostgreSQL."""

import asyncio
import json
from uuid import uuid4

import pytest
from typer.testing import CliRunner

from bus.codec import encode
from bus.postgres import PostgresUnitOfWorkFactory, create_pool, migrate
from schemas import Envelope
from services.cli.main import app
from tests.integration.bus_postgres_support import AddItem, ItemAdded

pytestmark = pytest.mark.integration


async def _record_one_operation(database_url: str) -> Envelope:
    pool = await create_pool(database_url)
    try:
        async with pool.acquire() as connection:
            await migrate(connection)
        command = Envelope.wrap(AddItem(item_id=uuid4()), saga_id=uuid4(), step=0, producer="api@h1")
        async with PostgresUnitOfWorkFactory(pool, encode=encode).begin("items", command) as uow:
            assert uow is not None
            uow.emit(Envelope.wrap(ItemAdded(item_id=command.payload.item_id), cause=command))  # type: ignore[attr-defined]
        async with PostgresUnitOfWorkFactory(pool, encode=encode).begin("api", None) as other:
            assert other is not None
            other.emit(Envelope.wrap(AddItem(item_id=uuid4())))
        return command
    finally:
        await pool.close()


def test_history_by_correlation_saga_and_type(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    command = asyncio.run(_record_one_operation(database_url))
    monkeypatch.setenv("STRATA_DATABASE_URL", database_url)
    runner = CliRunner()

    by_correlation = runner.invoke(app, ["events", "history", "--correlation", str(command.correlation_id), "--json"])
    by_saga = runner.invoke(app, ["events", "history", "--saga", str(command.saga_id), "--json"])
    by_type = runner.invoke(app, ["events", "history", "--type", "bustest.pg.add_item", "--json"])
    as_table = runner.invoke(app, ["events", "history", "--correlation", str(command.correlation_id)])

    assert by_correlation.exit_code == 0, by_correlation.output
    lines = [json.loads(line) for line in by_correlation.output.splitlines()]
    assert [line["type"] for line in lines] == ["bustest.pg.add_item", "bustest.pg.item_added"]
    assert lines[1]["causation_id"] == str(command.message_id)
    assert len(by_saga.output.splitlines()) == 2
    assert len(by_type.output.splitlines()) == 2
    assert as_table.exit_code == 0
    assert "2 message(s)" in as_table.output


def test_history_refuses_bad_input_clearly(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATA_DATABASE_URL", database_url)
    runner = CliRunner()

    bad_id = runner.invoke(app, ["events", "history", "--saga", "not-a-uuid"])
    naive_time = runner.invoke(app, ["events", "history", "--since", "2026-01-01T00:00:00"])
    not_migrated = runner.invoke(app, ["events", "history"])

    assert bad_id.exit_code == 2
    assert "not a UUID" in bad_id.output
    assert naive_time.exit_code == 2
    assert "time zone" in naive_time.output
    assert not_migrated.exit_code == 1
    assert "migrations" in not_migrated.output
    assert database_url not in not_migrated.output
