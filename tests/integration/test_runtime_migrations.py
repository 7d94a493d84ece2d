"""Per-service migrations on a real PostgreSQL: in order, once, all or nothing, edits refused, replicas take turns."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from bus.postgres.migrate import load_migrations
from schemas.errors import FailedPrecondition, InvalidArgument, StrataError, Transient
from services.runtime.migrations import applied_versions, migrate_service, migrate_service_at

pytestmark = pytest.mark.integration

POOLS = "CREATE TABLE __SCHEMA__.pools (pool_id uuid PRIMARY KEY, name text NOT NULL);"
VOLUMES = "CREATE TABLE __SCHEMA__.volumes (volume_id uuid PRIMARY KEY, pool_id uuid REFERENCES __SCHEMA__.pools);"


@pytest.fixture
async def connection(database_url: str) -> AsyncIterator["asyncpg.Connection[asyncpg.Record]"]:
    connection = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


def write(folder: Path, name: str, sql: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(sql, encoding="utf-8")
    return path


async def tables(connection: "asyncpg.Connection[asyncpg.Record]", schema: str) -> list[str]:
    rows = await connection.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name", schema
    )
    return [row["table_name"] for row in rows]


async def test_migrations_apply_in_order_into_the_services_own_schema(
    connection: "asyncpg.Connection[asyncpg.Record]", tmp_path: Path
) -> None:
    write(tmp_path, "0002_volumes.sql", VOLUMES)  # written first: order comes from the number, not the disk
    write(tmp_path, "0001_pools.sql", POOLS)
    write(tmp_path, "README.md", "not a migration")
    assert await migrate_service(connection, "storage", tmp_path) == [1, 2]
    assert await tables(connection, "storage") == ["pools", "schema_migrations", "volumes"]
    assert await applied_versions(connection, "storage") == [1, 2]
    names = await connection.fetch("SELECT name FROM storage.schema_migrations ORDER BY version")
    assert [row["name"] for row in names] == ["pools", "volumes"]


async def test_running_again_changes_nothing_and_a_new_file_applies_alone(
    connection: "asyncpg.Connection[asyncpg.Record]", tmp_path: Path
) -> None:
    write(tmp_path, "0001_pools.sql", POOLS)
    assert await migrate_service(connection, "storage", tmp_path) == [1]
    assert await migrate_service(connection, "storage", tmp_path) == []
    write(tmp_path, "0002_volumes.sql", VOLUMES)
    assert await migrate_service(connection, "storage", tmp_path) == [2]
    assert await applied_versions(connection, "storage") == [1, 2]


async def test_two_services_keep_their_schemas_apart(
    connection: "asyncpg.Connection[asyncpg.Record]", tmp_path: Path
) -> None:
    write(tmp_path, "0001_pools.sql", POOLS)
    await migrate_service(connection, "storage", tmp_path)
    await migrate_service(connection, "snapshot", tmp_path)
    assert await tables(connection, "storage") == ["pools", "schema_migrations"]
    assert await tables(connection, "snapshot") == ["pools", "schema_migrations"]
    assert await applied_versions(connection, "image") == []


async def test_an_edited_applied_migration_is_refused(
    connection: "asyncpg.Connection[asyncpg.Record]", tmp_path: Path
) -> None:
    path = write(tmp_path, "0001_pools.sql", POOLS)
    await migrate_service(connection, "storage", tmp_path)
    path.write_text(POOLS.replace("name text", "label text"), encoding="utf-8")
    with pytest.raises(FailedPrecondition, match="0001_pools of schema storage was changed after it was applied"):
        await migrate_service(connection, "storage", tmp_path)


async def test_a_failing_migration_applies_nothing_and_raises_a_strata_error(
    connection: "asyncpg.Connection[asyncpg.Record]", tmp_path: Path
) -> None:
    write(tmp_path, "0001_pools.sql", POOLS)
    write(tmp_path, "0002_broken.sql", "CREATE TABLE __SCHEMA__.broken (id uuid PRIMARY KEY, oops nosuchtype);")
    with pytest.raises(StrataError) as failed:
        await migrate_service(connection, "storage", tmp_path)
    assert not isinstance(failed.value, asyncpg.PostgresError)
    assert failed.value.__cause__ is None
    assert await applied_versions(connection, "storage") == []
    assert await tables(connection, "storage") == []


async def test_replicas_starting_together_apply_each_migration_once(database_url: str, tmp_path: Path) -> None:
    write(tmp_path, "0001_pools.sql", POOLS)
    write(tmp_path, "0002_volumes.sql", VOLUMES)
    results = await asyncio.gather(*(migrate_service_at(database_url, "storage", tmp_path) for _ in range(4)))
    assert sorted(results, key=len) == [[], [], [], [1, 2]]


async def test_migrations_load_from_a_package_by_name() -> None:
    loaded = load_migrations("bus.postgres.migrations", "somewhere")
    assert loaded[0].version == 1
    assert "__SCHEMA__" not in loaded[0].sql
    assert "somewhere." in loaded[0].sql


@pytest.mark.parametrize("schema", ["Storage", "1storage", "storage; DROP TABLE x", "", "a" * 64])
async def test_a_bad_schema_name_is_refused(tmp_path: Path, schema: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        load_migrations(tmp_path, schema)
    assert refused.value.field == "schema"


@pytest.mark.parametrize(
    ("files", "says"),
    [
        (["1_pools.sql"], "must be named NNNN_lower_case_name.sql"),
        (["0001-pools.sql"], "must be named NNNN_lower_case_name.sql"),
        (["0001_pools.sql", "0001_volumes.sql"], "share version 0001"),
    ],
)
def test_misnamed_or_duplicate_files_are_refused(tmp_path: Path, files: list[str], says: str) -> None:
    for name in files:
        write(tmp_path, name, POOLS)
    with pytest.raises(InvalidArgument, match=says):
        load_migrations(tmp_path, "storage")


async def test_an_unreachable_database_is_transient(tmp_path: Path) -> None:
    write(tmp_path, "0001_pools.sql", POOLS)
    with pytest.raises(Transient):
        await migrate_service_at("postgresql://postgres@127.0.0.1:1/postgres", "storage", tmp_path)
