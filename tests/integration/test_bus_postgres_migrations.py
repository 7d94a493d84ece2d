"""The bus migrator on a real PostgreSQL: idempotent, concurrent-safe, refuses edited migrations."""

import asyncio

import asyncpg
import pytest

from bus.postgres import migrate
from bus.postgres.migrate import BUS_MIGRATIONS, load_migrations
from schemas import FailedPrecondition, InvalidArgument

pytestmark = pytest.mark.integration


async def test_migrations_are_idempotent(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        first = await migrate(connection)
        second = await migrate(connection)
        tables = await connection.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'bus' ORDER BY table_name"
        )
    finally:
        await connection.close()

    assert first == [migration.version for migration in load_migrations(BUS_MIGRATIONS, "bus")]
    assert second == []
    assert [row["table_name"] for row in tables] == ["inbox", "journal", "outbox", "schema_migrations"]


async def test_concurrent_migrators_apply_each_migration_once(database_url: str) -> None:
    connections = [await asyncpg.connect(database_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(connection) for connection in connections))
        recorded = await connections[0].fetchval("SELECT count(*) FROM bus.schema_migrations")
    finally:
        for connection in connections:
            await connection.close()

    assert sorted(len(applied) for applied in results) == [0, 0, len(load_migrations(BUS_MIGRATIONS, "bus"))]
    assert recorded == len(load_migrations(BUS_MIGRATIONS, "bus"))


async def test_a_schema_of_its_own_and_a_bad_schema_name(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await migrate(connection, schema="bus_other")
        with pytest.raises(InvalidArgument, match="schema name"):
            await migrate(connection, schema="bus; DROP TABLE x")
        schemas = await connection.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bus%' ORDER BY nspname")
    finally:
        await connection.close()

    assert [row["nspname"] for row in schemas] == ["bus_other"]


async def test_an_applied_migration_that_was_edited_is_refused(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await migrate(connection)
        await connection.execute("UPDATE bus.schema_migrations SET checksum = 'edited' WHERE version = 1")
        with pytest.raises(FailedPrecondition, match="was changed after it was applied"):
            await migrate(connection)
    finally:
        await connection.close()
