"""SQL literals for the statements the unit of work sends without parameters.

Why not parameters: a statement with parameters is its own network round trip, and COMMIT another; on a loaded
machine each costs as much as the work itself. Written as literals, the outbox rows, the journal rows and COMMIT
travel as one simple query. Every value is typed here, so quoting is exhaustive: text is an escape string
(`E'...'`, with backslash and quote escaped, so it is safe whatever `standard_conforming_strings` says), bytes are
hex, numbers are formatted from int, ids from UUID, times from an aware datetime.
"""

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from schemas.errors import InvalidArgument

SqlValue = str | bytes | int | UUID | datetime | None


def literal(value: SqlValue) -> str:
    """Render one value as a PostgreSQL literal; raises on a type it does not know (never guesses)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        raise InvalidArgument("booleans are not written as SQL literals here")
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, UUID):
        return f"'{value}'::uuid"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidArgument("times written to the bus tables must carry a time zone")
        return f"'{value.isoformat()}'::timestamptz"
    if isinstance(value, bytes):
        return f"E'\\\\x{value.hex()}'::bytea"
    if isinstance(value, str):
        return text_literal(value)
    raise InvalidArgument(f"cannot write a {type(value).__name__} as an SQL literal")


def text_literal(text: str) -> str:
    """An escape-string literal of `text`; PostgreSQL text cannot hold NUL, so it is refused rather than cut."""
    if "\x00" in text:
        raise InvalidArgument("text for PostgreSQL must not contain NUL characters")
    return "E'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def values_rows(rows: Sequence[Sequence[str]]) -> str:
    """`(a, b), (c, d)` from rows of already rendered literals."""
    return ", ".join(f"({', '.join(row)})" for row in rows)
