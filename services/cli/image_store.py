"""`strata image-store`: add, list and remove the image stores of a zone (where templates and ISOs are kept).

`add` checks the configuration against the plugin's own model before anything is sent, as `strata pool add` does.
"""

import uuid
from typing import TYPE_CHECKING, Annotated

import typer

from schemas import StrataError
from schemas.image import (
    AddImageStore,
    ImageStoreAdded,
    ImageStoreAddFailed,
    ImageStoreRemoved,
    ImageStoreRemoveFailed,
    RemoveImageStore,
)
from services.cli.pool import checked_config, parse_config
from services.cli.talking import (
    JsonOption,
    TimeoutOption,
    as_given,
    console,
    errors,
    fail,
    id_or_name,
    invalid,
    listing,
    print_json,
    talk,
    the_only,
    zone_id,
    zone_label,
)

if TYPE_CHECKING:  # plugins, queries and the bus are imported when a command runs, so that `strata --help` stays fast
    from schemas.image_queries import ImageStoreInfo
    from services.cli.sending import Client

app = typer.Typer(help="Image stores: where a zone keeps its templates and ISOs.", no_args_is_help=True)


@app.command("add")
def add(  # noqa: PLR0917  # typer makes each parameter an option or argument
    name: Annotated[str, typer.Argument(help="The store's name, unique in its zone.")],
    plugin: Annotated[str, typer.Option("--plugin", help="An image-store plugin (fsbackup, s3).")],
    config: Annotated[
        list[str], typer.Option("--config", "-c", help="A config field as key=value (repeat).", show_default=False)
    ] = [],  # noqa: B006  # typer reads the default; it is never mutated
    config_json: Annotated[str | None, typer.Option("--config-json", help="The config as a JSON object.")] = None,
    zone: Annotated[str, typer.Option(help="The zone (a UUID or a name).")] = "default",
    as_json: JsonOption = False,
    timeout: TimeoutOption = 30.0,
) -> None:
    """Add an image store to a zone."""
    from plugins.registry import load_plugins

    try:
        values = checked_config(load_plugins(), plugin, parse_config(config, config_json))
        command = AddImageStore(store_id=uuid.uuid4(), name=name, zone_id=zone_id(zone), plugin=plugin, config=values)
    except StrataError as error:
        fail(error)
    except ValueError as error:  # pydantic's ValidationError: the fields at fault, never the config's values
        fail(invalid(error))

    async def work(client: "Client") -> ImageStoreAdded:
        with errors.status(f"adding image store {name} ..."):
            added = await client.send(command, (ImageStoreAdded,), (ImageStoreAddFailed,), timeout=timeout)
        assert isinstance(added, ImageStoreAdded)
        return added

    added = talk(work)
    if as_json:
        print_json(added)
        return
    console.print(f"image store [bold]{added.name}[/bold] {added.store_id} ({added.plugin}) is in use")


async def find_store(client: "Client", store: str, *, timeout: float) -> "ImageStoreInfo":
    """The image store named or numbered `store`."""
    from schemas.image_queries import ImageStoresListed, ListImageStores

    wanted = id_or_name(store)
    listed = await client.ask(ListImageStores(), ImageStoresListed, timeout=timeout)
    return the_only(
        [info for info in listed.stores if info.store_id == wanted or info.name == store],
        missing=f"no image store {store!r} (see `strata image-store list`)",
        ambiguous=lambda count: f"{count} image stores are named {store!r}: give its id",
        field="store",
    )


@app.command("list")
def list_stores(
    zone: Annotated[str | None, typer.Option(help="Only the stores of this zone.")] = None,
    as_json: JsonOption = False,
    timeout: TimeoutOption = 15.0,
) -> None:
    """List the image stores in use."""
    from schemas.image_queries import ImageStoresListed, ListImageStores

    async def work(client: "Client") -> ImageStoresListed:
        return await client.ask(
            ListImageStores(zone_id=zone_id(zone) if zone else None), ImageStoresListed, timeout=timeout
        )

    stores = list(talk(work).stores)
    if as_json:
        print_json(stores)
        return
    table = listing("id", "name", "zone", "plugin", "images")
    for info in stores:
        table.add_row(str(info.store_id), info.name, zone_label(info.zone_id), info.plugin, str(info.images))
    console.print(table)


@app.command("remove")
def remove(
    store: Annotated[str, typer.Argument(help="The store's id or name.")],
    as_json: JsonOption = False,
    timeout: TimeoutOption = 30.0,
) -> None:
    """Stop using an image store (refused while it holds images)."""

    async def work(client: "Client") -> ImageStoreRemoved:
        info = await find_store(client, store, timeout=timeout)
        command = RemoveImageStore(store_id=info.store_id)
        removed = await client.send(command, (ImageStoreRemoved,), (ImageStoreRemoveFailed,), timeout=timeout)
        assert isinstance(removed, ImageStoreRemoved)
        return removed

    removed = talk(work)
    if as_json:
        print_json(removed)
        return
    console.print(f"image store {as_given(store, removed.store_id)} removed")
