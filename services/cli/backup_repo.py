"""`strata backup-repo`: add, list, show and remove backup repositories (the backup service keeps them).

`add` checks the configuration against the plugin's own model before anything is sent; a secret not given is asked
for with hidden input. Listings read the backup service's tables (STRATA_DATABASE_URL), configurations masked.
"""

import json
import uuid
from typing import TYPE_CHECKING, Annotated, Any

import typer

from schemas import StrataError
from services.cli.pool import checked_config, parse_config
from services.cli.talking import (
    JsonOption,
    TimeoutOption,
    as_given,
    console,
    errors,
    fail,
    found_one,
    id_or_name,
    invalid,
    listing,
    print_json,
    read,
    talk,
    zone_id,
    zone_label,
)

if TYPE_CHECKING:  # the bus is imported when a command runs, so that `strata --help` stays fast
    from services.cli.sending import Client

app = typer.Typer(help="Backup repositories: where backups are kept.", no_args_is_help=True)
RepositoryArgument = Annotated[str, typer.Argument(help="The repository's id or name.")]


async def repository_rows(connection: Any, wanted: str | None = None) -> list[dict[str, Any]]:  # asyncpg; JSON
    """The repositories (one, by id or name, with `wanted`), each with its masked config and live backups."""
    rows = await connection.fetch(
        "SELECT r.repository_id, r.name, r.plugin, r.masked_config::text AS config, r.zone_id, r.created_at, "
        "(SELECT count(*) FROM backup.backups b WHERE b.repository_id = r.repository_id AND b.state <> 'Removed') "
        "AS backups FROM backup.repositories r ORDER BY r.name"
    )
    found = [
        {
            "repository_id": str(row["repository_id"]),
            "name": row["name"],
            "plugin": row["plugin"],
            "config": json.loads(row["config"]),  # an object in --json and the API, as a pool's is
            "zone_id": str(row["zone_id"]),
            "backups": row["backups"],
            "created_at": row["created_at"].isoformat(),
        }
        for row in rows
    ]
    if wanted is None:
        return found
    wanted_id = id_or_name(wanted)
    return [
        row
        for row in found
        if (wanted_id is not None and row["repository_id"] == str(wanted_id)) or row["name"] == wanted
    ]


def find_repository(repository: str) -> dict[str, Any]:  # Any: the row's JSON values
    """The repository named or numbered `repository`, read from the backup service's tables."""

    async def work(connection: Any) -> list[dict[str, Any]]:  # asyncpg connection
        return await repository_rows(connection, repository)

    return found_one(
        read(work),
        missing=f"no backup repository {repository!r} (see `strata backup-repo list`)",
        ambiguous=lambda count: f"{count} repositories match {repository!r}: give its id",
        field="repository",
    )


def repository_in_zone(repository: str | None, zone_id: uuid.UUID) -> dict[str, Any]:  # Any: the row's JSON values
    """The repository given (id or name), or where none is given the only one that serves `zone_id`."""
    if repository is not None:
        return find_repository(repository)

    async def work(connection: Any) -> list[dict[str, Any]]:  # asyncpg connection
        return await repository_rows(connection)

    serving = [row for row in read(work) if row["zone_id"] == str(zone_id)]
    names = ", ".join(row["name"] for row in serving)
    return found_one(
        serving,
        missing="no backup repository serves the volume's zone: add one (`strata backup-repo add`)",
        ambiguous=lambda count: (
            f"{count} backup repositories serve the volume's zone ({names}): choose one with --repo"
        ),
        field="repository",
    )


@app.command("add")
def add(  # noqa: PLR0917  # typer makes each parameter an option or argument
    name: Annotated[str, typer.Argument(help="The repository's name.")],
    plugin: Annotated[str, typer.Option("--plugin", help="A backup plugin (`strata plugins list --role backup`).")],
    config: Annotated[
        list[str], typer.Option("--config", "-c", help="A config field as key=value (repeat).", show_default=False)
    ] = [],  # noqa: B006  # typer reads the default; it is never mutated
    config_json: Annotated[str | None, typer.Option("--config-json", help="The config as a JSON object.")] = None,
    zone: Annotated[str, typer.Option(help="The zone it serves (a UUID or a name).")] = "default",
    as_json: JsonOption = False,
    timeout: TimeoutOption = 60.0,
) -> None:
    """Add a backup repository (like CloudStack's addBackupRepository)."""
    from plugins.registry import load_plugins
    from schemas.backup import AddBackupRepository, BackupRepositoryAdded, BackupRepositoryAddFailed

    try:
        values = checked_config(load_plugins(), plugin, parse_config(config, config_json))
        command = AddBackupRepository(
            repository_id=uuid.uuid4(), name=name, plugin=plugin, config=values, zone_id=zone_id(zone)
        )
    except StrataError as error:
        fail(error)
    except ValueError as error:  # pydantic's ValidationError: the fields at fault, never the config's values
        fail(invalid(error))

    async def work(client: "Client") -> BackupRepositoryAdded:
        with errors.status(f"adding backup repository {name} ..."):
            added = await client.send(command, (BackupRepositoryAdded,), (BackupRepositoryAddFailed,), timeout=timeout)
        assert isinstance(added, BackupRepositoryAdded)
        return added

    added = talk(work)
    if as_json:
        print_json(added)
        return
    console.print(f"backup repository [bold]{added.name}[/bold] {added.repository_id} ({added.plugin}) added")


@app.command("list")
def list_repositories(as_json: JsonOption = False) -> None:
    """List the backup repositories."""

    async def work(connection: Any) -> list[dict[str, Any]]:  # asyncpg connection; JSON rows
        return await repository_rows(connection)

    rows = read(work)
    if as_json:
        print_json({"repositories": rows})
        return
    table = listing("id", "name", "plugin", "zone", "backups", "created")
    for row in rows:
        table.add_row(
            row["repository_id"],
            row["name"],
            row["plugin"],
            zone_label(row["zone_id"]),
            str(row["backups"]),
            row["created_at"][:19],
        )
    console.print(table)


@app.command("show")
def show(repository: RepositoryArgument, as_json: JsonOption = False) -> None:
    """Show one repository, its configuration masked."""
    row = find_repository(repository)
    if as_json:
        print_json(row)
        return
    for key, value in row.items():
        shown = json.dumps(value, sort_keys=True) if isinstance(value, dict) else value
        console.print(f"[bold]{key}[/bold]: {shown}", highlight=False)


@app.command("remove")
def remove(repository: RepositoryArgument, as_json: JsonOption = False, timeout: TimeoutOption = 60.0) -> None:
    """Remove a repository that holds no backups."""
    from schemas.backup import BackupRepositoryRemoved, BackupRepositoryRemoveFailed, RemoveBackupRepository

    repository_id = uuid.UUID(find_repository(repository)["repository_id"])

    async def work(client: "Client") -> BackupRepositoryRemoved:
        removed = await client.send(
            RemoveBackupRepository(repository_id=repository_id),
            (BackupRepositoryRemoved,),
            (BackupRepositoryRemoveFailed,),
            timeout=timeout,
        )
        assert isinstance(removed, BackupRepositoryRemoved)
        return removed

    removed = talk(work)
    if as_json:
        print_json(removed)
        return
    console.print(f"backup repository {as_given(repository, removed.repository_id)} removed")


@app.command("gc")
def collect_garbage(
    repository: RepositoryArgument, as_json: JsonOption = False, timeout: TimeoutOption = 3600.0
) -> None:
    """Free the chunks no backup references (safe while backups run: then nothing is freed, try again later)."""
    from schemas.backup import CollectRepositoryGarbage, RepositoryGarbageCollected, RepositoryGarbageCollectFailed
    from services.cli.talking import human_bytes

    repository_id = uuid.UUID(find_repository(repository)["repository_id"])

    async def work(client: "Client") -> RepositoryGarbageCollected:
        with errors.status(f"collecting garbage in repository {repository} ..."):
            collected = await client.send(
                CollectRepositoryGarbage(repository_id=repository_id),
                (RepositoryGarbageCollected,),
                (RepositoryGarbageCollectFailed,),
                timeout=timeout,
            )
        assert isinstance(collected, RepositoryGarbageCollected)
        return collected

    collected = talk(work)
    if as_json:
        print_json(collected)
        return
    if collected.deferred:
        console.print("a backup is being written into the repository: nothing was freed, collect again later")
        return
    console.print(f"freed {collected.freed_chunks} chunks ({human_bytes(collected.freed_bytes)})")
