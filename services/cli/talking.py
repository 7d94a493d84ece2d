"""What every command group that talks to the services shares: the connection, errors, options and formats.

The CLI reaches the services only through the bus (STRATA_AMQP_URL, STRATA_NAMESPACE): commands are published and
their outcome event awaited; listings are request/reply queries. A refusal or failure is printed as the service
said it (error class, message, the field at fault) and the command exits 1; nothing was changed.
"""

import asyncio
import json
import logging
import os
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import typer
from pydantic import BaseModel
from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.table import Table

from schemas import StrataError
from schemas.errors import InvalidArgument, NotFound

if TYPE_CHECKING:  # the bus is imported when a command runs, so that `strata --help` stays fast
    from bus.settings import BusSettings
    from services.cli.sending import Client

T = TypeVar("T")
UNWRAPPED_WIDTH = 1000
"""The width of a console whose output is not a terminal: wide enough that no line is cut."""


class _Console(Console):
    """A console that wraps at the terminal's width, and not at all when its output is a pipe or a file (where Rich
    would assume 80 columns): a line read by grep or a script stays one line, and an id in it stays whole. `COLUMNS`
    still sets the width where it is given (read when printing, as Rich reads it)."""

    @property
    def size(self) -> ConsoleDimensions:
        """The terminal's size, or an unwrapped width where the output is no terminal and no `COLUMNS` is set."""
        dimensions = super().size
        if self.is_terminal or os.environ.get("COLUMNS", "").isdigit():
            return dimensions
        return ConsoleDimensions(UNWRAPPED_WIDTH, dimensions.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]  # Rich's own setter


def make_console(*, stderr: bool = False) -> Console:
    """A console for the CLI's output (`_Console`)."""
    return _Console(stderr=stderr)


console = make_console()
errors = make_console(stderr=True)  # errors and progress: stdout stays clean for --json


class _Output:
    """Whether this command was asked for JSON: `--json` records it when parsed, so that `fail` prints errors the
    same way."""

    json = False


def _remember_json(value: bool) -> bool:
    _Output.json = value
    return value


JsonOption = Annotated[
    bool,
    typer.Option(
        "--json", help="Print JSON (for scripts) instead of a table; errors too, on stdout.", callback=_remember_json
    ),
]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", min=1, help="Seconds to wait for the service's answer.", show_default=True)
]
CONNECT_SECONDS = 5.0  # how long a command tries to reach the broker before it says it cannot
ZONE_NAMESPACE = uuid.UUID("6f1d8a52-3c8e-4b8e-9a1e-0c5b7d2f4e10")  # zone names map to stable ids under it
SIZE_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
SIZE_PATTERN = re.compile(r"^\s*(\d+)\s*([KMGT]?)(I?B)?\s*$", re.IGNORECASE)


def bus_settings() -> "BusSettings":
    """The bus settings of one CLI command: STRATA_AMQP_URL checked (never printed: it holds the password), and a
    broker that is down or refuses the login given CONNECT_SECONDS, said in one line (aiormq's own error line per
    attempt is silenced), unless STRATA_PUBLISH_OUTAGE_BOUND asks for more."""
    from bus.settings import BusSettings

    settings = BusSettings()
    parts = urlsplit(settings.amqp_url)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname or not port_ok:
        raise InvalidArgument(
            "STRATA_AMQP_URL is not an AMQP URL; it looks like amqp://USER:PASSWORD@HOST:5672/VHOST",
            field="STRATA_AMQP_URL",
        )
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    if "STRATA_PUBLISH_OUTAGE_BOUND" in os.environ:
        return settings
    return settings.model_copy(update={"publish_outage_bound": CONNECT_SECONDS})


def _with_client(work: "Callable[[Client], Awaitable[T]]") -> T:
    """Run `work` with a client connected to the bus (its errors raised)."""
    from bus.rabbit import RabbitTransport
    from services.cli.sending import Client

    async def main() -> T:
        async with Client(RabbitTransport(bus_settings(), purpose="cli")) as client:
            return await work(client)

    return asyncio.run(main())


def talk(work: "Callable[[Client], Awaitable[T]]") -> T:
    """Run `work` with a connected client; a strata error is printed with what to do, and the command exits 1."""
    try:
        return _with_client(work)
    except StrataError as error:
        fail(error)


def read(work: Callable[[Any], Awaitable[T]]) -> T:  # Any: an asyncpg connection (bus.postgres's pool)
    """Run `work` on a connection to STRATA_DATABASE_URL, for listings the services answer no query for yet.

    Read-only: every change goes through the services' commands.
    """
    from bus.postgres import create_pool
    from bus.postgres.errors import translated_errors
    from services.runtime.settings import RuntimeSettings

    async def main() -> T:
        # A server that is down, or tables not created yet (no service has started), is told as strata's error.
        with translated_errors():
            pool = await create_pool(RuntimeSettings().database_url.get_secret_value(), min_size=1, max_size=1)
            try:
                async with pool.acquire() as connection:
                    return await work(connection)
            finally:
                await pool.close()

    try:
        return asyncio.run(main())
    except StrataError as error:
        fail(error)


def invalid(error: ValueError) -> InvalidArgument:
    """A message's validation error as InvalidArgument naming the first field at fault (never its value)."""
    problems = getattr(error, "errors", None)
    if callable(problems):
        first = problems()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(whole)"
        return InvalidArgument(f"{where}: {first['msg']}", field=where)
    return InvalidArgument(str(error))


def fail(error: StrataError) -> NoReturn:
    """Print a strata error (never a secret: errors carry field names, not values) and exit 1.

    With `--json` the error is a JSON object on stdout, `{"error": {"class", "code", "message", "field"}}`, so that a
    script reads one format whatever happened.
    """
    from services.cli.sending import CommandFailed

    # A service's refusal is shown under the class the service raised (FailedPrecondition, NotFound, ...).
    kind = error.error.error_class if isinstance(error, CommandFailed) else type(error).__name__
    if _Output.json:
        described = {"class": kind, "code": error.code, "message": error.message, "field": error.field}
        typer.echo(json.dumps({"error": described}))
        raise typer.Exit(1)
    where = f" (field: {error.field})" if error.field else ""
    # Escaped: a pattern in a message (`^[a-z0-9-]+$`) would otherwise be read as markup and printed in part.
    errors.print(f"[red]{kind}:[/red] {escape(error.message + where)}", highlight=False)
    raise typer.Exit(1)


def listing(*columns: str) -> Table:
    """A list's table with these columns: ids kept whole (they are copied into the next command), other cells
    folded where the terminal is narrow."""
    table = Table(box=None, header_style="bold")
    for column in columns:
        if column == "id" or column.endswith(" id"):
            table.add_column(column, no_wrap=True)
        else:
            table.add_column(column, overflow="fold")
    return table


def print_record(record: BaseModel, as_json: bool) -> None:
    """Print one model: as JSON, or as a table of its fields (a list shown comma-separated)."""
    if as_json:
        print_json(record)
        return
    table = Table(box=None, show_header=False)
    for key, value in record.model_dump(mode="json").items():
        table.add_row(f"[bold]{key}[/bold]", _cell(value))
    console.print(table)


def _cell(value: Any) -> str:  # Any: a JSON value
    """A field's value in a record's table: a list comma-separated (a list of objects one object a line, its set
    fields `key: value` comma-separated), an object one `key: value` a line."""
    if isinstance(value, list) and any(isinstance(item, dict) for item in value):
        return "\n".join(
            ", ".join(f"{key}: {_cell(inner)}" for key, inner in item.items() if inner is not None)
            if isinstance(item, dict)
            else _cell(item)
            for item in value
        )
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return "\n".join(f"{key}: {_cell(inner)}" for key, inner in value.items()) or "-"
    return "-" if value is None else str(value)


def print_json(value: BaseModel | Sequence[BaseModel] | dict[str, Any]) -> None:  # Any: JSON values
    """Print a model, a list of models or a dict as JSON."""
    if isinstance(value, BaseModel):
        typer.echo(value.model_dump_json(indent=2))
    elif isinstance(value, Sequence):
        typer.echo(json.dumps([item.model_dump(mode="json") for item in value], indent=2))
    else:
        typer.echo(json.dumps(value, indent=2, default=str))


def id_or_name(value: str) -> uuid.UUID | None:
    """The UUID `value` is, or None when it is a name."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def the_only(found: Sequence[T], *, missing: str, ambiguous: Callable[[int], str], field: str) -> T:
    """The one object a name or id matched: NotFound with `missing` if none, InvalidArgument if several."""
    if not found:
        raise NotFound(missing, field=field)
    if len(found) > 1:
        raise InvalidArgument(ambiguous(len(found)), field=field)
    return found[0]


def found_one(found: Sequence[T], *, missing: str, ambiguous: Callable[[int], str], field: str) -> T:
    """`the_only` for a look-up made outside `talk`: a missing or ambiguous one is printed and the command exits 1."""
    try:
        return the_only(found, missing=missing, ambiguous=ambiguous, field=field)
    except StrataError as error:
        fail(error)


def parse_uuid(value: str, what: str) -> uuid.UUID:
    """A UUID argument, or a clear error naming the argument."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a UUID", param_hint=what) from None


def zone_id(value: str) -> uuid.UUID:
    """A zone given as a UUID, or as a name that always maps to the same id."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return uuid.uuid5(ZONE_NAMESPACE, value)


def as_given(given: str, object_id: uuid.UUID) -> str:
    """An object as the user named it on the command line: its id, or its name with its id."""
    return str(object_id) if id_or_name(given) is not None else f"{given} ({object_id})"


def zone_label(value: uuid.UUID | str) -> str:
    """A zone as a person named it where the name is the default one (`default`), else its id."""
    return "default" if str(value) == str(zone_id("default")) else str(value)


def talk_if_answered(work: "Callable[[Client], Awaitable[T]]", otherwise: T) -> T:
    """`talk`, or `otherwise` when the bus or the service does not answer (for what a command only adds to its
    output, such as names beside ids)."""
    try:
        return _with_client(work)
    except StrataError:
        return otherwise


def parse_size(value: str) -> int:
    """`10G`, `512M`, `1GiB` or a plain number of bytes."""
    match = SIZE_PATTERN.match(value)
    if match is None:
        raise typer.BadParameter(f"{value!r} is not a size (e.g. 10G, 512M, 1073741824)", param_hint="SIZE")
    size = int(match.group(1)) * SIZE_UNITS[match.group(2).upper()]
    if size <= 0:
        raise typer.BadParameter("a size must be more than 0 bytes", param_hint="SIZE")
    return size


def human_bytes(size: int) -> str:
    """A size for people: 16.0 MiB."""
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{size} B"
