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


def render(statement: str, args: Sequence[SqlValue]) -> str:
    """`statement` with each placeholder `$n` replaced by the literal of `args[n - 1]`.

    Placeholders inside quoted text ('...', E'...') or quoted names ("...") are left alone; a dollar-quoted string
    is refused (it could hide a placeholder-like text). Every argument must be used, and no placeholder may point
    past the arguments, so that a mistake fails here and not in the commit.
    """
    out: list[str] = []
    used: set[int] = set()
    i, n = 0, len(statement)
    while i < n:
        char = statement[i]
        if char in "'\"":
            end = _quoted_end(statement, i)
            out.append(statement[i:end])
            i = end
        elif char == "$":
            j = i + 1
            while j < n and statement[j].isdigit():
                j += 1
            if j == i + 1:
                raise InvalidArgument("dollar-quoted text is not supported in a deferred statement")
            index = int(statement[i + 1 : j])
            if not 1 <= index <= len(args):
                raise InvalidArgument(f"placeholder ${index} has no argument ({len(args)} given)")
            used.add(index)
            out.append(literal(args[index - 1]))
            i = j
        else:
            out.append(char)
            i += 1
    if len(used) != len(args):
        unused = sorted(set(range(1, len(args) + 1)) - used)
        raise InvalidArgument(f"arguments {unused} of a deferred statement have no placeholder")
    return "".join(out)


def _quoted_end(statement: str, start: int) -> int:
    """The index just past the quoted text or name that starts at `start` (doubled quotes and, in E'', escapes)."""
    quote = statement[start]
    escapes = quote == "'" and start > 0 and statement[start - 1] in "eE"
    i = start + 1
    while i < len(statement):
        char = statement[i]
        if escapes and char == "\\":
            i += 2
            continue
        if char == quote:
            if i + 1 < len(statement) and statement[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    raise InvalidArgument("unterminated quoted text in a deferred statement")
