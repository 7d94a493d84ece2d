"""Templates and ISOs (listed by the image service), backups (list, take: 202) and volume migration (202), as
`strata template|backup|volume migrate` send them. Backups and their
repositories are read from the backup service's tables as `strata backup list` reads them (the service answers no
query for them yet)."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from schemas.backup import BackupCreated, BackupCreateFailed, CreateBackup
from schemas.backup_restores import BackupRestored, BackupRestoreFailed, RestoreBackup
from schemas.errors import NotFound
from schemas.image import ImageKind
from schemas.image_queries import ImageInfo, ImagesListed, ListImages
from schemas.migration import MigrateVolume, VolumeMigrated, VolumeMigrateFailed
from services.api.auth import caller, context_of
from services.api.context import ApiContext
from services.api.errors import ERROR_RESPONSES
from services.api.keys import ApiKey, Role
from services.api.models import OperationOut
from services.api.routes_pools import accepted
from services.api.routes_volumes import follow
from services.cli.backup import _json as backup_json
from services.cli.backup import _rows as backup_rows
from services.cli.backup_repo import repository_rows
from services.cli.backup_schedule_rows import schedule_rows
from services.cli.host import known_hosts, vm_id_of
from services.cli.pool import find_pool
from services.cli.talking import invalid
from services.cli.volume import find_volume

router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)
Viewer = Annotated[ApiKey, Depends(caller(Role.VIEWER))]
Operator = Annotated[ApiKey, Depends(caller(Role.OPERATOR))]
JsonObject = dict[str, Any]  # Any: JSON values


class TakeBackupRequest(BaseModel):
    """A backup to take (`strata backup create`)."""

    model_config = ConfigDict(extra="forbid")

    volume: str = Field(min_length=1, description="The volume's id or name.")
    repository: str = Field(min_length=1, description="The backup repository's id or name.")
    snapshot_id: uuid.UUID | None = Field(default=None, description="Back up this snapshot instead of a new one.")
    keep_snapshot: bool = False


class MigrateRequest(BaseModel):
    """Where to move a volume (`strata volume migrate`)."""

    model_config = ConfigDict(extra="forbid")

    pool: str = Field(min_length=1, description="The destination pool's id or name.")
    staged: bool = Field(
        default=False, description="Copy through the zone's image store even where one agent reaches both pools."
    )


@router.get("/templates", response_model=list[ImageInfo], tags=["templates"])
async def list_images(
    request: Request, key: Viewer, kind: ImageKind | None = None, limit: Annotated[int, Query(ge=1, le=10_000)] = 500
) -> tuple[ImageInfo, ...]:
    """Templates and ISOs with their state in each image store."""
    context = context_of(request)
    query = ListImages(kind=kind, limit=limit)
    return (await context.asking(key).ask(query, ImagesListed, timeout=context.settings.query_timeout_seconds)).images


@router.get("/backup-repositories", tags=["backups"])
async def list_repositories(request: Request, key: Viewer) -> list[JsonObject]:
    """Backup repositories, their configuration masked, with their live backups."""
    async with context_of(request).pool.acquire() as connection:
        return await repository_rows(connection)


async def _volume_id(context: ApiContext, key: ApiKey, volume: str | None) -> uuid.UUID | None:
    """The id of the volume a list is narrowed to (by id or name), or None for every volume."""
    if not volume:
        return None
    return (await find_volume(context.asking(key), volume, timeout=context.settings.query_timeout_seconds)).volume_id


@router.get("/backup-schedules", tags=["backups"])
async def list_backup_schedules(
    request: Request, key: Viewer, volume: Annotated[str | None, Query(max_length=128)] = None
) -> list[JsonObject]:
    """Backup schedules, of one volume (id or name) or all, the next to run first, with their retention."""
    context = context_of(request)
    volume_id = await _volume_id(context, key, volume)
    async with context.pool.acquire() as connection:
        return await schedule_rows(connection, volume_id)


@router.get("/backups", tags=["backups"])
async def list_backups(
    request: Request, key: Viewer, volume: Annotated[str | None, Query(max_length=128)] = None
) -> list[JsonObject]:
    """Backups, newest first, with their lineage and cost."""
    context = context_of(request)
    volume_id = await _volume_id(context, key, volume)
    async with context.pool.acquire() as connection:
        rows = await backup_rows(connection, volume_id=volume_id, backup_id=None, everything=False)
    return [backup_json(row) for row in rows]


@router.post("/backups", status_code=202, response_model=OperationOut, tags=["backups"])
async def take_backup(request: Request, key: Operator, body: TakeBackupRequest) -> JSONResponse:
    """Back up a volume (through a new snapshot) or one of its snapshots; follow it to BackedUp."""
    context = context_of(request)
    info = await find_volume(context.asking(key), body.volume, timeout=context.settings.query_timeout_seconds)
    async with context.pool.acquire() as connection:
        repositories = await repository_rows(connection, body.repository)
    if not repositories:
        raise NotFound(f"no backup repository {body.repository!r}", field="repository")
    command = CreateBackup(
        backup_id=uuid.uuid4(),
        volume_id=info.volume_id,
        repository_id=uuid.UUID(repositories[0]["repository_id"]),
        snapshot_id=body.snapshot_id,
        keep_snapshot=body.keep_snapshot,
    )
    operation = await follow(
        context,
        key,
        kind="backup.create",
        target=info.name,
        command=command,
        success=BackupCreated,
        failure=BackupCreateFailed,
    )
    return accepted(operation)


class RestoreRequest(BaseModel):
    """A backup restored to a new volume (`strata backup restore --name N [--pool P]`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, description="The new volume's name.")
    pool: str | None = Field(default=None, description="Its pool (id or name); default: the allocator's.")


class InPlaceRequest(BaseModel):
    """A backup restored over a volume whose VM is stopped (`strata backup restore --in-place V [--vm --host]`)."""

    model_config = ConfigDict(extra="forbid")

    volume: str = Field(min_length=1, max_length=128, description="The volume to overwrite (id or name).")
    vm: str | None = Field(
        default=None, max_length=128, description="Its VM (id or name), checked to be stopped; default: the volume's."
    )
    host: str | None = Field(
        default=None, min_length=1, max_length=255, description="The VM's host; default: the host reporting the VM."
    )


async def _repository_zone(context: ApiContext, backup_id: uuid.UUID) -> uuid.UUID:
    """The zone of the backup's repository; NotFound for a backup that does not exist."""
    async with context.pool.acquire() as connection:
        rows = await backup_rows(connection, volume_id=None, backup_id=backup_id, everything=True)
        repositories = await repository_rows(connection, str(rows[0]["repository_id"])) if rows else []
    if not rows or not repositories:
        raise NotFound(f"no backup {backup_id}", field="backup_id")
    return uuid.UUID(repositories[0]["zone_id"])


async def _restore(context: ApiContext, key: ApiKey, target: str, command: RestoreBackup) -> JSONResponse:
    operation = await follow(
        context,
        key,
        kind="backup.restore",
        target=target,
        command=command,
        success=BackupRestored,
        failure=BackupRestoreFailed,
    )
    return accepted(operation)


@router.post("/backups/{backup_id}/restore", status_code=202, response_model=OperationOut, tags=["backups"])
async def restore_backup(request: Request, key: Operator, backup_id: uuid.UUID, body: RestoreRequest) -> JSONResponse:
    """Restore a backup to a new volume in its repository's zone; the data are checked against the backup's hashes
    before the volume is released."""
    context = context_of(request)
    zone = await _repository_zone(context, backup_id)
    client, timeout = context.asking(key), context.settings.query_timeout_seconds
    pool_id = (await find_pool(client, body.pool, timeout=timeout)).pool_id if body.pool else None
    try:
        command = RestoreBackup(
            restore_id=uuid.uuid4(),
            backup_id=backup_id,
            volume_id=uuid.uuid4(),
            in_place=False,
            name=body.name,
            zone_id=zone,
            pool_id=pool_id,
        )
    except ValueError as error:
        raise invalid(error) from None
    return await _restore(context, key, body.name, command)


@router.post("/backups/{backup_id}/restore-in-place", status_code=202, response_model=OperationOut, tags=["backups"])
async def restore_in_place(request: Request, key: Operator, backup_id: uuid.UUID, body: InPlaceRequest) -> JSONResponse:
    """Restore a backup over a volume (held, behind a safety snapshot; its VM must be stopped): the data are checked
    against the backup's hashes before the volume is released; a failed restore leaves the volume as it was."""
    context = context_of(request)
    await _repository_zone(context, backup_id)
    client, timeout = context.asking(key), context.settings.query_timeout_seconds
    info = await find_volume(client, body.volume, timeout=timeout)
    host, vm_id = body.host, info.vm_id
    if body.vm is not None or (vm_id is not None and host is None):
        hosts = await known_hosts(client, timeout=timeout)
        vm_id = vm_id_of(hosts, body.vm) if body.vm is not None else vm_id
        reporting = [each.identity.host for each in hosts if any(vm.vm_id == vm_id for vm in each.vms)]
        if host is None and not reporting:
            raise NotFound(f"no registered host reports VM {body.vm or vm_id}: give its host", field="host")
        host = host or reporting[0]
    try:
        command = RestoreBackup(
            restore_id=uuid.uuid4(),
            backup_id=backup_id,
            volume_id=info.volume_id,
            in_place=True,
            host=host,
            vm_id=vm_id,
        )
    except ValueError as error:
        raise invalid(error) from None
    return await _restore(context, key, info.name, command)


@router.post("/volumes/{volume}/migrate", status_code=202, response_model=OperationOut, tags=["volumes"])
async def migrate_volume(request: Request, key: Operator, volume: str, body: MigrateRequest) -> JSONResponse:
    """Move a volume to another pool (same id): copied by the one agent that reaches both pools, otherwise (or with
    `staged`) through the zone's image store."""
    context = context_of(request)
    client, timeout = context.asking(key), context.settings.query_timeout_seconds
    info = await find_volume(client, volume, timeout=timeout)
    target = await find_pool(client, body.pool, timeout=timeout)
    command = MigrateVolume(volume_id=info.volume_id, pool_id=target.pool_id, staged=body.staged)
    operation = await follow(
        context,
        key,
        kind="volume.migrate",
        target=info.name,
        command=command,
        success=VolumeMigrated,
        failure=VolumeMigrateFailed,
    )
    return accepted(operation)
