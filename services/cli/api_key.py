"""`strata api-key create|list|revoke`: the keys the HTTP API and its console accept (`strata run api`).

Keys are the API daemon's own state (schema `api` in STRATA_DATABASE_URL): this command writes them there
directly, applying the API's migrations first, so the first admin key can be made before the daemon ever ran.
A key is printed once, when it is created; only its SHA-256 is kept.
"""

import getpass
import uuid
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from services.cli.talking import JsonOption, console, listing, parse_uuid, print_json, read

if TYPE_CHECKING:  # the API's modules are imported when a command runs, so that `strata --help` stays fast
    from services.api.keys import KeyStore

app = typer.Typer(help="API keys of the HTTP API and the web console.", no_args_is_help=True)


class RoleChoice(StrEnum):
    """The roles a key can have."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


def _with_keys(connection: Any) -> "KeyStore":  # Any: an asyncpg connection (KeyStore takes a pool's interface)
    from services.api.keys import KeyStore

    return KeyStore(connection)


async def _migrated(connection: Any) -> None:  # Any: an asyncpg connection outside any transaction
    from services.api.bootstrap import migrate_api

    await migrate_api(connection)


@app.command("create")
def create(
    role: Annotated[RoleChoice, typer.Option(help="viewer reads; operator also changes storage; admin also keys.")],
    name: Annotated[str | None, typer.Option(help="What the key is for (shown in the journal as its actor).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API key and print it (this once: only its hash is kept).

    Example: strata api-key create --role operator --name ci
    """
    from services.api.audit import record
    from services.api.keys import Role

    label = name or f"{role.value}-{uuid.uuid4().hex[:6]}"

    async def work(connection: Any) -> tuple[dict[str, Any], str]:  # Any: JSON values
        await _migrated(connection)
        key, secret = await _with_keys(connection).create(label, Role(role.value), created_by="cli")
        await record(
            connection, f"cli:{getpass.getuser()}", "api_key.create", str(key.key_id), name=label, role=role.value
        )
        return key.public(), secret

    public, secret = read(work)
    if as_json:
        print_json({**public, "key": secret})
        return
    console.print(f"API key [bold]{public['name']}[/bold] ({public['role']}) {public['key_id']}:")
    typer.echo(secret)
    console.print("[dim]Keep it now: it is not shown again. Send it as `Authorization: Bearer KEY`.[/dim]")


@app.command("list")
def list_keys(as_json: JsonOption = False) -> None:
    """List the keys (never the keys themselves).

    Example: strata api-key list
    """

    async def work(connection: Any) -> list[dict[str, Any]]:  # Any: JSON values
        await _migrated(connection)
        return [key.public() for key in await _with_keys(connection).list()]

    keys = read(work)
    if as_json:
        print_json({"keys": keys})
        return
    table = listing("id", "name", "role", "created", "by", "revoked")
    for key in keys:
        revoked = "yes" if key["revoked"] else ""
        table.add_row(key["key_id"], key["name"], key["role"], key["created_at"][:19], key["created_by"], revoked)
    console.print(table)


@app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id (`strata api-key list`).")]) -> None:
    """Revoke a key at once (its console sessions end too).

    Example: strata api-key revoke 0b6f...
    """
    from services.api.audit import record

    wanted = parse_uuid(key_id, "KEY_ID")

    async def work(connection: Any) -> str:
        await _migrated(connection)
        name = (await _with_keys(connection).revoke(wanted)).name
        await record(connection, f"cli:{getpass.getuser()}", "api_key.revoke", str(wanted), name=name)
        return name

    console.print(f"API key {read(work)} revoked")
