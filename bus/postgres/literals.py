"""SQL literals for the statements the unit of work sends without parameters.

Why not parameters: a statement with parameters is its own network round trip, and COMMIT another; on a loaded
machine each costs as much as the work itself. Written as literals, the outbox rows, the journal rows and COMMIT
travel as one simple query (see the README's decision on SQL literals).

Why it is safe whatever the server's settings: every value is typed here, so quoting is exhaustive, and each
rendering means one thing under every setting that could change it:
- text is an escape string `E'...'`, whose meaning does not depend on `standard_conforming_strings`; a backslash is
  doubled and a quote is doubled (`''`, never `\\'`, which `backslash_quote = off` rejects); NUL is refused;
- bytes are hex inside an escape string; ids are hex and dashes; times are ISO 8601 in UTC (read the same under
  every `DateStyle` and `TimeZone`);
- a negative number is parenthesised, so that after a minus it cannot open a `--` comment;
- `render` refuses what it cannot read for sure: a placeholder glued to a name or a number, a plain quoted string
  with a backslash (its meaning depends on `standard_conforming_strings`), dollar quotes; and it leaves comments
  and quoted text alone. tests/integration/test_bus_postgres_literals.py checks all this against a real server with
  property tests (rendered statement versus the same statement with real parameters, under each setting).
"""

from collections.abc import Sequence
from datetime import UTC, datetime
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
        number = str(int(value))
        return f"({number})" if value < 0 else number
    if isinstance(value, UUID):
        return f"'{value}'::uuid"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidArgument("times written to the bus tables must carry a time zone")
        return f"'{value.astimezone(UTC).isoformat()}'::timestamptz"
    if isinstance(value, bytes):
        return f"E'\\\\x{value.hex()}'::bytea"
    if isinstance(value, str):
        return text_literal(value)
    raise InvalidArgument(f"cannot write a {type(value).__name__} as an SQL literal")


def text_literal(text: str) -> str:
    """An escape-string literal of `text`; PostgreSQL text cannot hold NUL, so it is refused rather than cut."""
    if "\x00" in text:
        raise InvalidArgument("text for PostgreSQL must not contain NUL characters")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise InvalidArgument("text for PostgreSQL must be valid Unicode (it holds a lone surrogate)") from None
    return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def values_rows(rows: Sequence[Sequence[str]]) -> str:
    """`(a, b), (c, d)` from rows of already rendered literals."""
    return ", ".join(f"({', '.join(row)})" for row in rows)


def render(statement: str, args: Sequence[SqlValue]) -> str:
    """`statement` with each placeholder `$n` replaced by the literal of `args[n - 1]`.

    Placeholders inside quoted text ('...', E'...'), quoted names ("...") and comments are left alone. Refused, so
    that a mistake fails here and not in the commit: a dollar-quoted string (it could hide a placeholder-like text),
    a plain quoted string with a backslash, a placeholder glued to a name or a number, an argument without a
    placeholder, a placeholder past the arguments.
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
        elif statement.startswith("--", i) or statement.startswith("/*", i):
            end = _comment_end(statement, i)
            out.append(statement[i:end])
            i = end
        elif char == "$":
            j = i + 1
            while j < n and statement[j].isdigit():
                j += 1
            if i > 0 and _is_word(statement[i - 1]):
                raise InvalidArgument("a placeholder glued to a name or a number is not supported here")
            if j == i + 1:
                raise InvalidArgument("dollar-quoted text is not supported in a deferred statement")
            if j < n and _is_word(statement[j]):
                raise InvalidArgument("a placeholder glued to a name or a number is not supported here")
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


def _is_word(char: str) -> bool:
    """A character that continues a name or a number in PostgreSQL's lexer."""
    return char.isalnum() or char in "_$" or ord(char) >= 0x80


def _quoted_end(statement: str, start: int) -> int:
    """The index just past the quoted text or name that starts at `start` (doubled quotes and, in E'', escapes)."""
    quote = statement[start]
    # E'' only where the E starts a token (in `name'...'` it ends a name, and the string is a plain one).
    prefixed = start > 0 and statement[start - 1] in "eE"
    escapes = quote == "'" and prefixed and (start < 2 or not _is_word(statement[start - 2]))
    i = start + 1
    while i < len(statement):
        char = statement[i]
        if char == "\\" and quote == "'":
            if not escapes:
                raise InvalidArgument(
                    "a backslash in a plain quoted string means what standard_conforming_strings says: write E'...'"
                )
            i += 2
            continue
        if char == quote:
            if i + 1 < len(statement) and statement[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    raise InvalidArgument("unterminated quoted text in a deferred statement")


def _comment_end(statement: str, start: int) -> int:
    """The index just past the comment at `start`: `--` to the end of the line, or `/* */`, which nest."""
    if statement.startswith("--", start):
        end = statement.find("\n", start)
        return len(statement) if end < 0 else end + 1
    depth, i = 0, start
    while i < len(statement):
        if statement.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif statement.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    raise InvalidArgument("unterminated comment in a deferred statement")
