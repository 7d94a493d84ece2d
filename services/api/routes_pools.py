"""Pools: list, show, add (202), enable, disable, maintain, cancel maintenance, delete (202).

Everything goes over the bus as `strata pool` sends it, with the CLI's own checks (services.cli.pool): the config
against the plugin's model, the placement against its manifest and the host registry, the agent that will attach
it running, all before anything is sent. A pool's config is accepted here and never answered back.
"""

import uuid
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from plugins.registry import validate_config
from schemas.storage import (
    AddPool,
    CancelPoolMaintenance,
    DeletePool,
    DisablePool,
    EnablePool,
    MaintainPool,
    PoolAdded,
    PoolAddFailed,
    PoolCommand,
    PoolScope,
)
from schemas.storage_queries import ListPools, PoolInfo, PoolsListed
from services.api.auth import caller, context_of
from services.api.context import ApiContext
from services.api.errors import ERROR_RESPONSES
from services.api.keys import ApiKey, Role
from services.api.models import AddPoolRequest, OperationOut
from services.api.operations import Operation, Tracker
from services.cli.host import check_placement, cluster_of, known_hosts
from services.cli.pool import change_state, checked_placement, find_pool
from services.cli.running import agent_of, agents_of_cluster, require_running
from services.cli.talking import invalid, zone_id

router = APIRouter(prefix="/api/v1", tags=["pools"], responses=ERROR_RESPONSES)
Viewer = Annotated[ApiKey, Depends(caller(Role.VIEWER))]
Operator = Annotated[ApiKey, Depends(caller(Role.OPERATOR))]


class PoolAction(StrEnum):
    """What POST /pools/{pool}/{action} does."""

    ENABLE = "enable"
    DISABLE = "disable"
    MAINTAIN = "maintain"
    CANCEL_MAINTENANCE = "cancel-maintenance"


POOL_ACTIONS: dict[str, type[PoolCommand]] = {
    "enable": EnablePool,
    "disable": DisablePool,
    "maintain": MaintainPool,
    "cancel-maintenance": CancelPoolMaintenance,
}


def accepted(operation: Operation) -> JSONResponse:
    """202 with the operation resource and where to poll it."""
    where = f"/api/v1/operations/{operation.operation_id}"
    return JSONResponse(operation.public(), status_code=202, headers={"Location": where})


@router.get("/pools", response_model=list[PoolInfo], summary="The pools, with state, capacity and use")
async def list_pools(
    request: Request, key: Viewer, include_removed: Annotated[bool, Query(alias="all")] = False
) -> tuple[PoolInfo, ...]:
    """Every pool (removed ones with `all=true`); never a configuration."""
    context = context_of(request)
    query = ListPools(include_removed=include_removed)
    return (await context.asking(key).ask(query, PoolsListed, timeout=context.settings.query_timeout_seconds)).pools


@router.get("/pools/{pool}", response_model=PoolInfo, summary="One pool by id or name")
async def show_pool(request: Request, key: Viewer, pool: str) -> PoolInfo:
    """One pool (never its configuration)."""
    context = context_of(request)
    return await find_pool(context.asking(key), pool, timeout=context.settings.query_timeout_seconds)


async def checked_add(context: ApiContext, key: ApiKey, body: AddPoolRequest) -> AddPool:
    """The AddPool command for `body`, after every check `strata pool add` makes; InvalidArgument names the field
    (a config field by its own name)."""
    plugins = context.plugins
    hypervisors = checked_placement(
        plugins, body.plugin, body.scope, host=body.host, cluster=body.cluster, hypervisors=body.hypervisors
    )
    validate_config(plugins.get(body.plugin), body.config)
    client = context.asking(key)
    timeout = context.settings.query_timeout_seconds
    hosts = await known_hosts(client, timeout=timeout)
    # A typo is refused before anything is sent; a host's pool without a cluster is in its host's cluster.
    check_placement(hosts, host=body.host, cluster=body.cluster)
    cluster = cluster_of(hosts, body.host) if body.scope is PoolScope.HOST and body.host else body.cluster
    try:
        command = AddPool(
            pool_id=uuid.uuid4(),
            name=body.name,
            plugin=body.plugin,
            config=body.config,
            scope=body.scope,
            zone_id=zone_id(body.zone),
            cluster_id=cluster,
            host=body.host,
            hypervisors=hypervisors,
            tags=frozenset(body.tags),
            thresholds=body.thresholds,
        )
    except ValueError as error:  # pydantic's: the field at fault, never the value
        raise invalid(error) from None
    if body.host or body.cluster:
        await require_running(
            context.transport, [agent_of(body.host) if body.host else agents_of_cluster(body.cluster or "")]
        )
    return command


async def start_add(context: ApiContext, key: ApiKey, command: AddPool) -> Operation:
    """Send AddPool as `key` and follow it to PoolAdded or PoolAddFailed, as an operation."""

    async def work(tracker: Tracker) -> PoolAdded:
        async with context.sending(key) as client:
            envelope = await client.publish(command)
            await tracker.sent(client, envelope, (PoolAdded, PoolAddFailed))
            added = await client.outcome(
                envelope, (PoolAdded,), (PoolAddFailed,), timeout=context.settings.operation_timeout_seconds
            )
        assert isinstance(added, PoolAdded)
        return added

    return await context.operations.start("pool.add", command.name, key.actor, work)


@router.post("/pools", status_code=202, response_model=OperationOut, summary="Add a pool (follow the operation)")
async def add_pool(request: Request, key: Operator, body: AddPoolRequest) -> JSONResponse:
    """Checked at once (422 names the field); then the storage service attaches it through an agent."""
    context = context_of(request)
    return accepted(await start_add(context, key, await checked_add(context, key, body)))


async def start_change(context: ApiContext, key: ApiKey, pool: str, action: str) -> Operation:
    """Send a pool state change and follow it until the pool settles."""
    client = context.asking(key)
    info = await find_pool(client, pool, timeout=context.settings.query_timeout_seconds)
    command = (DeletePool if action == "delete" else POOL_ACTIONS[action])(pool_id=info.pool_id)

    async def work(tracker: Tracker) -> dict[str, Any]:  # Any: JSON values
        async with context.sending(key) as sending:
            tracker.operation.note("sending", type=command.message_type)
            state = await change_state(sending, command, timeout=context.settings.operation_timeout_seconds)
        return {"pool_id": str(info.pool_id), "name": info.name, "state": state.value}

    return await context.operations.start(f"pool.{action}", info.name, key.actor, work)


@router.post("/pools/{pool}/{action}", status_code=202, response_model=OperationOut, summary="Change a pool's state")
async def change_pool(request: Request, key: Operator, pool: str, action: PoolAction) -> JSONResponse:
    """Enable, disable, maintain or cancel maintenance; the operation ends when the pool settles."""
    return accepted(await start_change(context_of(request), key, pool, action.value))


@router.delete("/pools/{pool}", status_code=202, response_model=OperationOut, summary="Delete a pool")
async def delete_pool(request: Request, key: Operator, pool: str) -> JSONResponse:
    """Delete a disabled pool, one in maintenance, or one whose add never finished."""
    return accepted(await start_change(context_of(request), key, pool, "delete"))
