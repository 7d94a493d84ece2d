"""SQL literals written by the unit of work come back from PostgreSQL exactly as they went in."""

from datetime import UTC, datetime
from uuid import uuid4

import asyncpg
import pytest

from bus.postgres import PostgresJournal, PostgresUnitOfWorkFactory, create_pool, migrate
from bus.postgres.literals import SqlValue, literal, render
from schemas import Envelope, Event, InvalidArgument, message

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


ROUND_TRIP_VALUES: list[SqlValue] = [
    *AWKWARD_TEXTS,
    b"\x00\x01\xff'\\",
    b"",
    0,
    -(2**63),
    2**63 - 1,
    uuid4(),
    datetime(2026, 11, 23, 20, 5, 7, 123456, tzinfo=UTC),
    None,
]


async def test_literals_round_trip_through_postgres(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        for conforming in ("on", "off"):  # escape strings mean the same whatever the server's setting
            await connection.execute(f"SET standard_conforming_strings = {conforming}")
            for value in ROUND_TRIP_VALUES:
                assert await connection.fetchval(f"SELECT {literal(value)}") == value, (conforming, value)
    finally:
        await connection.close()


@pytest.mark.parametrize("value", ["nul\x00inside", datetime(2026, 1, 1), True, 1.5])
def test_values_that_cannot_be_written_are_refused(value: object) -> None:
    with pytest.raises(InvalidArgument):
        literal(value)  # type: ignore[arg-type]


async def test_a_rendered_statement_reads_back_its_arguments(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        values = [value for value in ROUND_TRIP_VALUES if value is not None]
        # Placeholder-like text inside quoted text and names is left alone, and arguments may come in any order.
        columns = ", ".join(f'${index} AS "c${index}"' for index in reversed(range(1, len(values) + 1)))
        statement = f"SELECT '$1 stays' AS q, E'it\\'s $2' AS e, {columns}"
        row = await connection.fetchrow(render(statement, values))
        assert row is not None
        assert (row["q"], row["e"]) == ("$1 stays", "it's $2")
        assert [row[f"c${index}"] for index in range(1, len(values) + 1)] == values
    finally:
        await connection.close()


@pytest.mark.parametrize(
    ("statement", "args", "refusal"),
    [
        ("SELECT $2", [1], "no argument"),
        ("SELECT $1", [1, 2], "no placeholder"),
        ("SELECT '$1'", [1], "no placeholder"),
        ("SELECT $$text$$", [], "dollar-quoted"),
        ("SELECT 'open", [], "unterminated"),
    ],
)
def test_a_statement_that_does_not_match_its_arguments_is_refused(
    statement: str, args: list[SqlValue], refusal: str
) -> None:
    with pytest.raises(InvalidArgument, match=refusal):
        render(statement, args)


@message("bustest.pg.noted")
class Noted(Event):
    """An event with free text, as users' names and descriptions are."""

    text: str


async def test_awkward_text_in_a_payload_reaches_journal_and_outbox_intact(database_url: str) -> None:
    pool = await create_pool(database_url, max_size=2)
    try:
        async with pool.acquire() as connection:
            await migrate(connection)
        emitted = [Envelope.wrap(Noted(text=text), producer="o'brien\\host") for text in AWKWARD_TEXTS]
        async with PostgresUnitOfWorkFactory(pool).begin("api", None) as uow:
            assert uow is not None
            for envelope in emitted:
                uow.emit(envelope)

        journal = PostgresJournal(pool)
        entries = [await journal.get(envelope.message_id) for envelope in emitted]
        bodies = await pool.fetch("SELECT body FROM bus.outbox ORDER BY id")
    finally:
        await pool.close()

    assert [entry.to_envelope() if entry else None for entry in entries] == emitted
    assert [bytes(row["body"]) for row in bodies] == [
        envelope.payload.model_dump_json().encode() for envelope in emitted
    ]


# ------------------------------------------------------------------ safe whatever the server's settings say


async def test_a_quote_is_written_so_that_backslash_quote_off_accepts_it(database_url: str) -> None:
    # Before: `E'it\'s'`, which PostgreSQL rejects with backslash_quote = off ("unsafe use of \' in a string literal").
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("SET backslash_quote = off")
        awkward = "it's \\' o'brien"
        assert await connection.fetchval(f"SELECT {literal(awkward)}") == awkward
        assert await connection.fetchval(render("SELECT $1::text", ["it's"])) == "it's"
    finally:
        await connection.close()


async def test_a_negative_argument_after_a_minus_is_a_number_not_a_comment(database_url: str) -> None:
    # Before: `SELECT 1 -$1` with -5 became `SELECT 1 --5`, a comment: the query answered 1.
    connection = await asyncpg.connect(database_url)
    try:
        assert await connection.fetchval(render("SELECT 1 -$1", [-5])) == 6
        assert await connection.fetchval(render("SELECT -$1", [-(2**63) + 1])) == 2**63 - 1
    finally:
        await connection.close()


@pytest.mark.parametrize(
    ("statement", "args", "refusal"),
    [
        ("SELECT 1$1", [1], "glued"),
        ("SELECT x$1", [1], "glued"),
        ("SELECT $1x", [1], "glued"),
        ("SELECT 'a\\' || $1", [1], "backslash"),
        ("SELECT $1 -- $2", [1, 2], "no placeholder"),
        ("SELECT $1 /* $2 /* nested */ $2 */", [1, 2], "no placeholder"),
        ("SELECT $1 /* open", [1], "unterminated comment"),
    ],
)
def test_a_statement_whose_meaning_could_vary_is_refused(statement: str, args: list[SqlValue], refusal: str) -> None:
    with pytest.raises(InvalidArgument, match=refusal):
        render(statement, args)


def test_a_lone_surrogate_is_refused_here_not_in_the_commit() -> None:
    with pytest.raises(InvalidArgument, match="surrogate"):
        literal("\ud800")
