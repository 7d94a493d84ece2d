"""SQL literals written by the unit of work come back from PostgreSQL exactly as they went in."""

from datetime import UTC, datetime
from uuid import uuid4

import asyncpg
import pytest

from bus.postgres.literals import SqlValue, literal
from schemas import InvalidArgument

pytestmark = pytest.mark.integration

AWKWARD_TEXTS = [
    "",
    "it's",
    "back\\slash",
    "\\'; DROP TABLE bus.outbox; --",
    "E'\\x41'",
    "line\nbreak\ttab\r",
    "ünïcødé ✓ 𝄞",
    "$$dollar$$",
    "\\\\''\\'",
]


@pytest.mark.parametrize(
    "value",
    [
        *AWKWARD_TEXTS,
        b"\x00\x01\xff'\\",
        b"",
        0,
        -(2**63),
        2**63 - 1,
        uuid4(),
        datetime(2026, 11, 23, 20, 5, 7, 123456, tzinfo=UTC),
        None,
    ],
)
async def test_a_literal_round_trips_through_postgres(database_url: str, value: SqlValue) -> None:
    for conforming in ("on", "off"):  # escape strings mean the same whatever the server's setting
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute(f"SET standard_conforming_strings = {conforming}")
            assert await connection.fetchval(f"SELECT {literal(value)}") == value
        finally:
            await connection.close()


@pytest.mark.parametrize("value", ["nul\x00inside", datetime(2026, 1, 1), True, 1.5])
def test_values_that_cannot_be_written_are_refused(value: object) -> None:
    with pytest.raises(InvalidArgument):
        literal(value)  # type: ignore[arg-type]
