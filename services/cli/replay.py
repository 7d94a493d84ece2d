"""`strata replay`: what happened to an operation, from the journal; export it, replay it in a sandbox, re-drive it.

    strata replay [FILTERS] [--tree | --json | --mermaid] [--diagram FILE]    show a selection as a timeline
    strata replay [FILTERS] export FILE                                      write it to a JSON Lines export
    strata replay import FILE                                                check an export and load it here
    strata replay sandbox FILE                                               re-run an export, diff the outcome
    strata replay [FILTERS] redrive [--execute]                              send selected commands again

It reads the bus journal and the saga store (STRATA_DATABASE_URL, STRATA_BUS_SCHEMA, STRATA_SAGAS_SCHEMA).
"""

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar
from uuid import UUID

import typer
from rich.console import Console

from schemas.errors import StrataError

if TYPE_CHECKING:  # the bus is imported when the command runs, so that `strata --help` stays fast
    from bus.postgres.pool import Pool
    from sagas.definition import SagaRegistry
    from services.replay.selection import Selection

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
T = TypeVar("T")
console = Console()
notes = Console(stderr=True)  # what is said besides the output asked for (which may be JSON on stdout)
app = typer.Typer(
    help="See what happened to an operation (timeline, causal tree, sequence diagram); export, sandbox, re-drive.",
    invoke_without_command=True,
    rich_markup_mode="rich",
)
Ids = Annotated[list[str] | None, typer.Option(show_default=False)]


def _uuids(values: list[str] | None, option: str) -> tuple[UUID, ...]:
    found = []
    for value in values or []:
        try:
            found.append(UUID(value))
        except ValueError:
            raise typer.BadParameter(f"{value!r} is not a UUID", param_hint=option) from None
    return tuple(found)


def _time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint=option) from None
    if moment.tzinfo is None:
        raise typer.BadParameter(f"{value!r} needs a time zone, e.g. 2026-01-01T00:00:00+00:00", param_hint=option)
    return moment


def _database() -> tuple[str, str, str]:
    from bus.postgres import DEFAULT_SCHEMA
    from sagas.postgres_store import DEFAULT_SCHEMA as SAGAS_SCHEMA

    return (
        os.environ.get("STRATA_DATABASE_URL", DEFAULT_DATABASE_URL),
        os.environ.get("STRATA_BUS_SCHEMA", DEFAULT_SCHEMA),
        os.environ.get("STRATA_SAGAS_SCHEMA", SAGAS_SCHEMA),
    )


def load_code() -> None:
    """Register every message and saga definition, so that payloads decode and sagas replay."""
    import importlib
    import pkgutil

    from services.catalog import load_all_messages

    load_all_messages()
    definitions = importlib.import_module("sagas.definitions")
    for found in pkgutil.iter_modules(definitions.__path__):
        importlib.import_module(f"sagas.definitions.{found.name}")


def fail(error: StrataError) -> typer.Exit:
    """Print `error` in one line (never a URL: it may hold a password) and return the exit to raise."""
    console.print(f"[red]{type(error).__name__}:[/red] {error.message}")
    return typer.Exit(1)


def run(work: "Callable[[Pool], Awaitable[T]]") -> T:
    """Run `work` on a pool of the journal's database; a StrataError is printed (never the URL) and exits 1."""
    from bus.postgres import create_pool

    load_code()

    async def main() -> T:
        pool = await create_pool(_database()[0], min_size=1, max_size=2)
        try:
            return await work(pool)
        finally:
            await pool.close()

    try:
        return asyncio.run(main())
    except StrataError as error:
        raise fail(error) from None


def _dead_letter_ids() -> tuple[UUID, ...]:
    """The message ids in the namespace's dead letters (RabbitMQ, STRATA_AMQP_URL)."""
    from bus.rabbit import RabbitTransport
    from services.cli.talking import bus_settings

    async def main() -> tuple[UUID, ...]:
        transport = RabbitTransport(bus_settings(), purpose="cli", declare_topology=False)
        await transport.start()
        try:
            letters = await transport.list_dead(limit=100_000)
        finally:
            await transport.close()
        found = []
        for letter in letters:
            try:
                found.append(UUID(letter.message.message_id))
            except ValueError:
                continue  # not a strata message id: it cannot be in the journal either
        return tuple(found)

    try:
        return asyncio.run(main())
    except StrataError as error:
        console.print(f"[red]cannot read the dead letters:[/red] {error.message}")
        raise typer.Exit(1) from None


@app.callback()
def select(
    ctx: typer.Context,
    *,
    correlation: Annotated[
        list[str] | None, typer.Option("--correlation", help="An operation's correlation id.")
    ] = None,
    saga: Annotated[list[str] | None, typer.Option("--saga", help="A saga's id.")] = None,
    volume: Annotated[list[str] | None, typer.Option("--volume", help="Operations naming this volume.")] = None,
    pool: Annotated[list[str] | None, typer.Option("--pool", help="Operations naming this pool.")] = None,
    snapshot: Annotated[list[str] | None, typer.Option("--snapshot", help="Operations naming this snapshot.")] = None,
    vm: Annotated[list[str] | None, typer.Option("--vm", help="Operations naming this VM.")] = None,
    backup: Annotated[list[str] | None, typer.Option("--backup", help="Operations naming this backup.")] = None,
    template: Annotated[list[str] | None, typer.Option("--template", help="Operations naming this template.")] = None,
    message: Annotated[list[str] | None, typer.Option("--message", help="This message (by id).")] = None,
    types: Annotated[list[str] | None, typer.Option("--type", help="Only this message type.")] = None,
    service: Annotated[list[str] | None, typer.Option("--service", help="Only messages this service sent.")] = None,
    status: Annotated[
        list[str] | None, typer.Option("--status", help="Operations that: failed, dead-lettered, compensated.")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="Not before this ISO 8601 time (with zone).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Not after this ISO 8601 time (with zone).")] = None,
    naming_only: Annotated[
        bool, typer.Option("--naming-only", help="With an entity: only the messages naming it, not whole operations.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000, help="At most this many messages.")] = 1000,
    after: Annotated[
        str | None, typer.Option("--after", help="Continue after this cursor (printed at a page's end).")
    ] = None,
    tree: Annotated[bool, typer.Option("--tree", help="Show the causal tree instead of the timeline.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per message (payloads masked).")] = False,
    as_mermaid: Annotated[bool, typer.Option("--mermaid", help="Print the sequence diagram as Mermaid text.")] = False,
    diagram: Annotated[
        Path | None, typer.Option("--diagram", help="Write the sequence diagram: FILE.html (default), .svg or .mmd.")
    ] = None,
) -> None:
    """Select from the journal (filters combine; a repeated filter widens) and show it, oldest first in causal order."""
    from services.replay.selection import Cursor, Selection, Status

    try:
        statuses = tuple(Status(value) for value in status or [])
    except ValueError:
        raise typer.BadParameter(
            f"{status} is not a status (one of {', '.join(s.value for s in Status)})", param_hint="--status"
        ) from None
    entities = tuple(
        (kind, entity_id)
        for kind, values in (
            ("volume", volume),
            ("pool", pool),
            ("snapshot", snapshot),
            ("vm", vm),
            ("backup", backup),
            ("template", template),
        )
        for entity_id in _uuids(values, f"--{kind}")
    )
    try:
        selection = Selection(
            correlation_ids=_uuids(correlation, "--correlation"),
            saga_ids=_uuids(saga, "--saga"),
            entities=entities,
            message_ids=_uuids(message, "--message"),
            types=tuple(types or ()),
            services=tuple(service or ()),
            statuses=statuses,
            since=_time(since, "--since"),
            until=_time(until, "--until"),
            whole_operations=not naming_only,
            dead_letter_ids=_dead_letter_ids() if Status.DEAD_LETTERED in statuses else (),
        )
        cursor = Cursor.parse(after) if after is not None else None
    except StrataError as error:
        raise typer.BadParameter(error.message, param_hint=f"--{error.field or 'filter'}") from None
    ctx.obj = (selection, limit, cursor)
    if ctx.invoked_subcommand is not None:
        return
    _show(selection, limit, cursor, tree=tree, as_json=as_json, as_mermaid=as_mermaid, diagram=diagram)


def _show(
    selection: "Selection",
    limit: int,
    cursor: object,
    *,
    tree: bool,
    as_json: bool,
    as_mermaid: bool,
    diagram: Path | None,
) -> None:
    from services.replay.diagram import mermaid, write_diagram
    from services.replay.reading import Recorded, read
    from services.replay.render import print_json, show_timeline, show_tree
    from services.replay.saga_records import load_sagas
    from services.replay.selection import Cursor
    from services.replay.timeline import SagaRecord, causal_tree, timeline

    _, bus_schema, sagas_schema = _database()
    assert cursor is None or isinstance(cursor, Cursor)

    async def work(pool: "Pool") -> "tuple[list[Recorded], Cursor | None, list[SagaRecord]]":
        found, following = await read(pool, selection, limit=limit, after=cursor, schema=bus_schema)
        saga_ids = [message.saga_id for message in found if message.saga_id is not None]
        return found, following, await load_sagas(pool, saga_ids, schema=sagas_schema)

    found, following, sagas = run(work)
    lines = timeline(found, sagas, dead_letters=frozenset(selection.dead_letter_ids))
    if as_json:
        print_json(found)
    elif as_mermaid:
        typer.echo(mermaid(lines), nl=False)
    elif tree:
        show_tree(console, causal_tree(found))
    else:
        show_timeline(console, lines)
    if diagram is not None:
        try:
            write_diagram(diagram, lines, title=f"strata replay: {len(found)} message(s)")
        except OSError as error:
            console.print(f"[red]cannot write {diagram}:[/red] {error.strerror}")
            raise typer.Exit(1) from None
        notes.print(f"[dim]sequence diagram written to {diagram}[/dim]")
    if following is not None:
        typer.echo(f"more: add --after {following}", err=True)  # plain: a folded line would cut the cursor


def _selected(ctx: typer.Context) -> "Selection":
    from services.replay.selection import Selection

    selection = ctx.obj[0]
    assert isinstance(selection, Selection)
    return selection


@app.command("export")
def export(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The JSON Lines file to write.", dir_okay=False)],
) -> None:
    """Write the selection (messages, saga records, plugin configs masked, code version) to a JSON Lines export."""
    from services.replay.export_io import export_selection

    selection = _selected(ctx)
    if selection.empty:
        raise typer.BadParameter("give at least one filter (an export of the whole journal is rarely meant)")
    _, bus_schema, sagas_schema = _database()

    async def work(pool: "Pool") -> tuple[int, int]:
        return await export_selection(pool, selection, file, bus_schema=bus_schema, sagas_schema=sagas_schema)

    try:
        messages, sagas = run(work)
    except OSError as error:
        console.print(f"[red]cannot write {file}:[/red] {error.strerror}")
        raise typer.Exit(1) from None
    console.print(f"exported {messages} message(s) and {sagas} saga(s) to {file}")


@app.command("import")
def import_file(file: Annotated[Path, typer.Argument(help="An export written by `strata replay export`.")]) -> None:
    """Check an export line by line, then load it into this database's journal and saga store (all or nothing)."""
    from services.replay.export_format import read_export
    from services.replay.export_io import import_export

    load_code()
    try:
        checked = read_export(file)
    except StrataError as error:
        raise fail(error) from None
    _, bus_schema, sagas_schema = _database()

    async def work(pool: "Pool") -> tuple[int, int]:
        return await import_export(pool, checked, bus_schema=bus_schema, sagas_schema=sagas_schema)

    messages, sagas = run(work)
    console.print(
        f"imported {messages} new message(s) of {len(checked.messages)} and {sagas} new saga(s) of "
        f"{len(checked.sagas)} from {file} (recorded by strata {checked.code_version})"
    )


def _override_sagas(module: str | None) -> "SagaRegistry | None":
    """The saga definitions registered in MODULE's `SAGAS` registry (a changed saga to try against old records)."""
    import importlib

    from sagas.definition import SagaRegistry

    if module is None:
        return None
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does: a module of the project being debugged
    try:
        loaded = importlib.import_module(module)
    except ImportError as error:
        raise typer.BadParameter(f"cannot import {module}: {error}", param_hint="--sagas") from None
    found = getattr(loaded, "SAGAS", None)
    if not isinstance(found, SagaRegistry):
        raise typer.BadParameter(f"{module} has no SAGAS (a sagas.definition.SagaRegistry)", param_hint="--sagas")
    return found


@app.command("sandbox")
def sandbox(
    file: Annotated[Path, typer.Argument(help="An export written by `strata replay export`.")],
    *,
    server: Annotated[
        str | None,
        typer.Option("--server", help="A PostgreSQL server URL to make the sandbox's database on (default: embedded)."),
    ] = None,
    sagas: Annotated[
        str | None, typer.Option("--sagas", help="A module whose SAGAS registry replaces the installed definitions.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON report per saga.")] = False,
) -> None:
    """Re-run an export's sagas against this code in a fresh database (nothing is sent anywhere) and diff what they
    emit against the record; exit 1 if any differs, with the first divergent step."""
    import json

    from services.replay.export_format import read_export
    from services.replay.render import show_verdicts
    from services.replay.sandbox import SagaVerdict, Sandbox, combined_sagas, sandbox_store

    load_code()
    registry_override = _override_sagas(sagas)
    try:
        checked = read_export(file)
    except StrataError as error:
        raise fail(error) from None
    if not checked.sagas:
        raise fail(StrataError(f"{file} holds no saga to replay (export a selection with --saga or an entity)"))

    async def main() -> "list[SagaVerdict]":
        async with sandbox_store(server) as store:
            return await Sandbox(store, sagas=combined_sagas(registry_override)).replay(checked)

    try:
        verdicts = asyncio.run(main())
    except StrataError as error:
        raise fail(error) from None
    if as_json:
        for verdict in verdicts:
            typer.echo(json.dumps(verdict.as_json()))
    else:
        show_verdicts(console, verdicts, recorded_by=checked.code_version)
    if not all(verdict.same for verdict in verdicts):
        raise typer.Exit(1)
