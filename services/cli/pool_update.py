"""`strata pool update`: change a pool's configuration fields (a new password, a timeout), its tags or its own
capacity thresholds after it was added. Configuration changes are checked by an agent of the pool against the
plugin's model and the storage before they are kept; the update is applied whole or not at all."""

from typing import TYPE_CHECKING, Annotated

import typer

from schemas import StrataError
from schemas.errors import InvalidArgument
from schemas.pool_settings import PoolUpdated, PoolUpdateFailed, UpdatePool
from schemas.storage import PoolScope
from services.cli.pool import PoolArgument, find_pool, parse_config
from services.cli.talking import JsonOption, TimeoutOption, console, errors, fail, invalid, print_json, talk
from services.cli.thresholds import AllocatedOption, CapacityOption, OverprovisioningOption, thresholds_of

if TYPE_CHECKING:
    from schemas.storage_queries import PoolInfo
    from services.cli.sending import Client


def update(  # noqa: PLR0917  # typer makes each parameter an option or argument
    pool: PoolArgument,
    config: Annotated[
        list[str],
        typer.Option("--config", "-c", help="A config field to change, key=value (repeat).", show_default=False),
    ] = [],  # noqa: B006  # typer reads the default; it is never mutated
    config_json: Annotated[str | None, typer.Option("--config-json", help="Fields to change, a JSON object.")] = None,
    tag: Annotated[list[str], typer.Option(help="The pool's tags from now on (repeat); see --no-tags.")] = [],  # noqa: B006
    no_tags: Annotated[bool, typer.Option("--no-tags", help="Remove every tag of the pool.")] = False,
    capacity_threshold: CapacityOption = None,
    allocated_threshold: AllocatedOption = None,
    overprovisioning: OverprovisioningOption = None,
    default_thresholds: Annotated[
        bool, typer.Option("--default-thresholds", help="Drop the pool's own thresholds: the deployment's apply.")
    ] = False,
    as_json: JsonOption = False,
    timeout: TimeoutOption = 60.0,
) -> None:
    """Change a pool's configuration fields, tags or capacity thresholds; what is not given stays as it is.

    Example: strata pool update fast-1 -c qemu_img_timeout_seconds=120 --capacity-threshold 0.9
    """
    try:
        changes = parse_config(config, config_json)
        if tag and no_tags:
            raise InvalidArgument("give --tag or --no-tags, not both", field="tag")
    except StrataError as error:
        fail(error)

    async def work(client: "Client") -> PoolUpdated:
        from services.cli.running import agent_of, agents_of_cluster, require_running

        info = await find_pool(client, pool, timeout=timeout)
        command = _command(
            info,
            changes=changes,
            tags=tag,
            no_tags=no_tags,
            limits=(capacity_threshold, allocated_threshold, overprovisioning),
            default_thresholds=default_thresholds,
        )
        if changes:  # an agent of the pool checks them: with none running the update would wait
            where = (
                agent_of(info.host)
                if info.scope is PoolScope.HOST and info.host
                else agents_of_cluster(info.cluster_id or "")
            )
            await require_running(client.transport, [where])
        with errors.status(f"updating pool {info.name} ..."):
            updated = await client.send(command, (PoolUpdated,), (PoolUpdateFailed,), timeout=timeout)
        assert isinstance(updated, PoolUpdated)
        return updated

    updated = talk(work)
    if as_json:
        print_json(updated)
        return
    console.print(f"pool {pool} updated: {', '.join(updated.changed)}")


def _command(
    info: "PoolInfo",
    *,
    changes: dict[str, object],
    tags: list[str],
    no_tags: bool,
    limits: tuple[float | None, float | None, float | None],
    default_thresholds: bool,
) -> UpdatePool:
    try:
        thresholds = thresholds_of(info.thresholds, *limits)
        return UpdatePool(
            pool_id=info.pool_id,
            config=changes,
            tags=frozenset() if no_tags else (frozenset(tags) if tags else None),
            thresholds=thresholds,
            clear_thresholds=default_thresholds,
        )
    except ValueError as error:  # pydantic's ValidationError: the fields at fault, never the values
        raise invalid(error) from None
