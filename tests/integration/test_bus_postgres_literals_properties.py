"""Property tests: a statement rendered with literals means what the same statement means with real parameters,
whatever the value and whatever the server's settings that bear on literals (see `bus.postgres.literals`)."""

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus.postgres.literals import SqlValue, literal, render

pytestmark = pytest.mark.integration

# Every setting that changes how PostgreSQL reads a literal, with the values it takes. (asyncpg always sets
# client_encoding to UTF8, and a connection cannot change it.)
SERVER_SETTINGS = st.fixed_dictionaries(
    {
        "standard_conforming_strings": st.sampled_from(["on", "off"]),
        "backslash_quote": st.sampled_from(["on", "off", "safe_encoding"]),
        "escape_string_warning": st.sampled_from(["on", "off"]),
        "DateStyle": st.sampled_from(["'ISO, MDY'", "'SQL, DMY'", "'German, DMY'", "'Postgres, YMD'"]),
        "TimeZone": st.sampled_from(["'UTC'", "'America/St_Johns'", "'Asia/Kathmandu'", "'Pacific/Kiritimati'"]),
        "bytea_output": st.sampled_from(["hex", "escape"]),
        "IntervalStyle": st.sampled_from(["postgres", "iso_8601"]),
    }
)

# Any text, and text made of what the lexer treats specially, which any text seldom hits.
TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"])) | st.text(
    st.sampled_from("'\\\"$-*/;\nEe0x")
)
ZONES = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(min_value=-14 * 60, max_value=14 * 60)
)
# (value strategy, the SQL type its placeholder is cast to)
TYPED_VALUES: list[tuple[st.SearchStrategy[SqlValue], str]] = [
    (TEXT, "text"),
    (st.binary(), "bytea"),
    (st.integers(min_value=-(2**60), max_value=2**60), "bigint"),
    (st.uuids(), "uuid"),
    (st.datetimes(min_value=datetime(2, 1, 1), timezones=ZONES | st.just(UTC)), "timestamptz"),
    (st.none(), "text"),
]
NUMERIC_SHAPES = ["-{p}", "1 -{p}", "2*-{p}", "0-{p}", "abs(-{p})"]
SHAPES = [
    "{p}",
    "({p})",
    "ARRAY[{p}]",
    "{p} /* $99 is not a placeholder */",
    "{p} -- $99 neither\n",
    "(E'it''s \\\\ $99' || '') IS NULL OR {p} IS NOT DISTINCT FROM {p}",
    '{p} AS "name $99"',
    "coalesce({p}, {p})",
]


@st.composite
def statements(draw: st.DrawFn) -> tuple[str, list[SqlValue]]:
    """A SELECT of 1-4 columns, each a value in an expression around its placeholder."""
    columns: list[str] = []
    args: list[SqlValue] = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        values, sql_type = draw(st.sampled_from(TYPED_VALUES))
        value = draw(values)
        args.append(value)
        placeholder = f"${len(args)}::{sql_type}"
        shapes = SHAPES + (NUMERIC_SHAPES if sql_type == "bigint" and value is not None else [])
        columns.append(draw(st.sampled_from(shapes)).format(p=placeholder))
    order = draw(st.permutations(range(len(columns))))
    return "SELECT " + ", ".join(columns[i] for i in order), args


@pytest.fixture
def server(database_url: str) -> Iterator[tuple[asyncio.Runner, asyncpg.Connection]]:
    """One connection on an event loop of its own, shared by the examples of a property test."""
    with asyncio.Runner() as runner:
        connection = runner.run(asyncpg.connect(database_url))
        try:
            yield runner, connection
        finally:
            runner.run(connection.close())


async def _apply(connection: asyncpg.Connection, options: dict[str, str]) -> None:
    await connection.execute("; ".join(f"SET {name} = {value}" for name, value in options.items()))


_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@_SETTINGS
@given(statement=statements(), options=SERVER_SETTINGS)
def test_a_rendered_statement_means_what_it_means_with_parameters(
    server: tuple[asyncio.Runner, asyncpg.Connection], statement: tuple[str, list[SqlValue]], options: dict[str, str]
) -> None:
    runner, connection = server
    text, args = statement

    async def both() -> tuple[object, object]:
        await _apply(connection, options)
        with_parameters = await connection.fetchrow(text, *args)
        rendered = await connection.fetchrow(render(text, args))
        return with_parameters, rendered

    with_parameters, rendered = runner.run(both())
    assert rendered == with_parameters, (text, args, options)


@_SETTINGS
@given(values=st.lists(st.one_of(*(values for values, _ in TYPED_VALUES)), max_size=6), options=SERVER_SETTINGS)
def test_literals_read_back_as_their_values(
    server: tuple[asyncio.Runner, asyncpg.Connection], values: list[SqlValue], options: dict[str, str]
) -> None:
    runner, connection = server

    async def read_back() -> list[object]:
        await _apply(connection, options)
        if not values:
            return []
        row = await connection.fetchrow("SELECT " + ", ".join(literal(value) for value in values))
        assert row is not None
        return list(row)

    expected = [value.astimezone(UTC) if isinstance(value, datetime) else value for value in values]
    assert runner.run(read_back()) == expected
