"""Where data lives besides primary pools, and a pool's settings after it was added: image stores (list, add,
remove), backup repositories (add, remove) and pool updates (config fields, tags, thresholds), as `strata
image-store`, `strata backup-repo` and `strata pool update` send them. A store's or repository's config is checked
against its plugin's model first, the field at fault named; like a pool's, it is accepted and never answered."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from plugins.registry import validate_config
from schemas.backup import (
    AddBackupRepository,
    BackupRepositoryAdded,
    BackupRepositoryAddFailed,
    BackupRepositoryRemoved,
    BackupRepositoryRemoveFailed,
    RemoveBackupRepository,
)
from schemas.errors import InvalidArgument, NotFound
from schemas.image import (
    AddImageStore,
    ImageStoreAdded,
    ImageStoreAddFailed,
    ImageStoreRemoved,
    ImageStoreRemoveFailed,
    RemoveImageStore,
)
from schemas.image_queries import ImageStoreInfo, ImageStoresListed, ListImageStores
from schemas.pool_settings import PoolUpdated, PoolUpdateFailed
from schemas.storage import PoolScope, PoolThresholds
from services.api.auth import caller, context_of
from services.api.context import ApiContext
from services.api.errors import ERROR_RESPONSES
from services.api.keys import ApiKey, Role
from services.api.models import OperationOut
from services.api.routes_pools import accepted
from services.api.routes_volumes import follow
from services.cli.backup_repo import repository_rows
from services.cli.image_store import find_store
from services.cli.pool import find_pool
from services.cli.pool_update import _command as update_command
from services.cli.running import agent_of, agents_of_cluster, require_running
from services.cli.talking import invalid, zone_id

router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)
Viewer = Annotated[ApiKey, Depends(caller(Role.VIEWER))]
Operator = Annotated[ApiKey, Depends(caller(Role.OPERATOR))]
JsonObject = dict[str, Any]  # Any: JSON values


class StoreRequest(BaseModel):
    """An image store or a backup repository to add."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    plugin: str = Field(min_length=1, description="An image or backup plugin (GET /plugins?role=...).")
    config: dict[str, Any] = Field(  # Any: JSON values, checked against the plugin's own model
        default_factory=dict, json_schema_extra={"writeOnly": True}, description="The plugin's config. Never returned."
    )
    zone: str = Field(default="default", min_length=1)


class PoolUpdateRequest(BaseModel):
    """What to change of a pool; what is not given stays as it is."""

    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any] = Field(  # Any: JSON values, checked by an agent of the pool
        default_factory=dict, json_schema_extra={"writeOnly": True}, description="Config fields to change."
    )
    tags: list[str] | None = Field(default=None, description="The pool's tags from now on ([] removes them all).")
    thresholds: PoolThresholds | None = Field(default=None, description="The pool's own capacity thresholds.")
    default_thresholds: bool = Field(default=False, description="Drop the pool's own thresholds.")


def checked(context: ApiContext, body: StoreRequest, role: str) -> dict[str, Any]:  # Any: JSON values
    """The config, after the plugin's role and its model checked it (InvalidArgument names the field)."""
    plugin = context.plugins.get(body.plugin)
    if role not in plugin.manifest.roles:
        raise InvalidArgument(f"plugin {body.plugin} is not {role} storage", field="plugin")
    validate_config(plugin, body.config)
    return body.config


@router.get("/image-stores", response_model=list[ImageStoreInfo], tags=["templates"])
async def list_stores(request: Request, key: Viewer) -> tuple[ImageStoreInfo, ...]:
    """The image stores of every zone (their config masked)."""
    context = context_of(request)
    timeout = context.settings.query_timeout_seconds
    return (await context.asking(key).ask(ListImageStores(), ImageStoresListed, timeout=timeout)).stores


@router.post("/image-stores", status_code=202, response_model=OperationOut, tags=["templates"])
async def add_store(request: Request, key: Operator, body: StoreRequest) -> JSONResponse:
    """Add an image store to a zone (CloudStack's secondary storage)."""
    context = context_of(request)
    config = checked(context, body, "image")
    try:
        command = AddImageStore(
            store_id=uuid.uuid4(), name=body.name, zone_id=zone_id(body.zone), plugin=body.plugin, config=config
        )
    except ValueError as error:
        raise invalid(error) from None
    operation = await follow(
        context,
        key,
        kind="image.store.add",
        target=body.name,
        command=command,
        success=ImageStoreAdded,
        failure=ImageStoreAddFailed,
    )
    return accepted(operation)


@router.delete("/image-stores/{store}", status_code=202, response_model=OperationOut, tags=["templates"])
async def remove_store(request: Request, key: Operator, store: str) -> JSONResponse:
    """Remove an image store (refused while it holds images, naming them)."""
    context = context_of(request)
    info = await find_store(context.asking(key), store, timeout=context.settings.query_timeout_seconds)
    operation = await follow(
        context,
        key,
        kind="image.store.remove",
        target=info.name,
        command=RemoveImageStore(store_id=info.store_id),
        success=ImageStoreRemoved,
        failure=ImageStoreRemoveFailed,
    )
    return accepted(operation)


@router.post("/backup-repositories", status_code=202, response_model=OperationOut, tags=["backups"])
async def add_repository(request: Request, key: Operator, body: StoreRequest) -> JSONResponse:
    """Add a backup repository (CloudStack's addBackupRepository)."""
    context = context_of(request)
    config = checked(context, body, "backup")
    try:
        command = AddBackupRepository(
            repository_id=uuid.uuid4(), name=body.name, plugin=body.plugin, config=config, zone_id=zone_id(body.zone)
        )
    except ValueError as error:
        raise invalid(error) from None
    operation = await follow(
        context,
        key,
        kind="backup_repository.add",
        target=body.name,
        command=command,
        success=BackupRepositoryAdded,
        failure=BackupRepositoryAddFailed,
    )
    return accepted(operation)


@router.delete("/backup-repositories/{repository}", status_code=202, response_model=OperationOut, tags=["backups"])
async def remove_repository(request: Request, key: Operator, repository: str) -> JSONResponse:
    """Remove a repository that holds no backups."""
    context = context_of(request)
    async with context.pool.acquire() as connection:
        found = await repository_rows(connection, repository)
    if not found:
        raise NotFound(f"no backup repository {repository!r}", field="repository")
    command = RemoveBackupRepository(repository_id=uuid.UUID(found[0]["repository_id"]))
    operation = await follow(
        context,
        key,
        kind="backup_repository.remove",
        target=found[0]["name"],
        command=command,
        success=BackupRepositoryRemoved,
        failure=BackupRepositoryRemoveFailed,
    )
    return accepted(operation)


@router.patch("/pools/{pool}", status_code=202, response_model=OperationOut, tags=["pools"])
async def update_pool(request: Request, key: Operator, pool: str, body: PoolUpdateRequest) -> JSONResponse:
    """Change a pool's config fields (an agent of the pool checks them), tags or capacity thresholds."""
    context = context_of(request)
    info = await find_pool(context.asking(key), pool, timeout=context.settings.query_timeout_seconds)
    limits = body.thresholds
    command = update_command(
        info,
        changes=body.config,
        tags=body.tags or [],
        no_tags=body.tags == [],
        limits=(
            limits.capacity_disable_threshold if limits else None,
            limits.allocated_capacity_disable_threshold if limits else None,
            limits.overprovisioning_factor if limits else None,
        ),
        default_thresholds=body.default_thresholds,
    )
    if body.config:  # an agent of the pool checks the fields: with none running the update would wait
        host_scoped = info.scope is PoolScope.HOST and info.host
        where = agent_of(info.host) if host_scoped and info.host else agents_of_cluster(info.cluster_id or "")
        await require_running(context.transport, [where])
    operation = await follow(
        context,
        key,
        kind="pool.update",
        target=info.name,
        command=command,
        success=PoolUpdated,
        failure=PoolUpdateFailed,
    )
    return accepted(operation)
