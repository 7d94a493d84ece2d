"""The remaining changes the CLI makes, each sent and followed as an operation (202): a volume resized or reverted
to a snapshot, snapshot policies (listed, created, deleted), a backup deleted or verified, backup schedules
(created, deleted), a template or ISO registered from a URL (the stores' downloads go on after it is registered) or
deleted."""

import uuid
from typing import Annotated, Any

import typer
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from schemas.backup import (
    BackupDeleted,
    BackupDeleteFailed,
    BackupVerified,
    BackupVerifyFailed,
    DeleteBackup,
    VerifyBackup,
)
from schemas.backup_schedules import (
    BackupScheduleCreated,
    BackupScheduleCreateFailed,
    BackupScheduleDeleted,
    BackupScheduleDeleteFailed,
    CreateBackupSchedule,
    DeleteBackupSchedule,
    KeepRules,
    max_backups_or_default,
)
from schemas.errors import InvalidArgument, NotFound
from schemas.image import (
    DeleteImage,
    ImageDeleted,
    ImageDeleteFailed,
    ImageFormat,
    ImageKind,
    ImageRegistered,
    ImageRegisterFailed,
    RegisterImage,
)
from schemas.snapshot import (
    DeleteSnapshotPolicy,
    RevertSnapshot,
    SnapshotPolicyCreated,
    SnapshotPolicyCreateFailed,
    SnapshotPolicyDeleted,
    SnapshotPolicyDeleteFailed,
    SnapshotReverted,
    SnapshotRevertFailed,
)
from schemas.snapshot_queries import ListSnapshotPolicies, SnapshotPoliciesListed, SnapshotPolicyInfo
from schemas.storage import ResizeVolume, VolumeResized, VolumeResizeFailed
from services.api.auth import caller, context_of
from services.api.errors import ERROR_RESPONSES
from services.api.keys import ApiKey, Role
from services.api.models import OperationOut
from services.api.routes_pools import accepted
from services.api.routes_volumes import follow
from services.cli.backup_repo import repository_rows
from services.cli.image_downloads import find_image
from services.cli.snapshot_policy import checked_policy
from services.cli.talking import invalid, parse_size, zone_id
from services.cli.volume import find_volume

router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)
Viewer = Annotated[ApiKey, Depends(caller(Role.VIEWER))]
Operator = Annotated[ApiKey, Depends(caller(Role.OPERATOR))]
JsonObject = dict[str, Any]  # Any: JSON values


class ResizeRequest(BaseModel):
    """A volume's new size (`strata volume resize`)."""

    model_config = ConfigDict(extra="forbid")

    size: str = Field(description="The new virtual size: `20G`, `512M` or bytes.")
    allow_shrink: bool = Field(default=False, description="Shrinking loses the data past the new end: opt in.")


class PolicyRequest(BaseModel):
    """A snapshot policy (`strata snapshot-policy create`), in CloudStack's formats."""

    model_config = ConfigDict(extra="forbid")

    volume: str = Field(min_length=1, description="The volume's id or name.")
    interval: str = Field(description="HOURLY, DAILY, WEEKLY or MONTHLY.")
    schedule: str = Field(description="MM, MM:HH, MM:HH:D (1-7) or MM:HH:DD (1-28), as the interval needs.")
    timezone: str = Field(default="UTC", description="The IANA time zone the schedule is read in.")
    max_snaps: int = Field(default=8, ge=1, le=10_000, description="How many of its snapshots to keep.")


class RegisterRequest(BaseModel):
    """A template or ISO to register from a URL (`strata template register`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    url: str = Field(min_length=1, description="http(s):// URL the image stores download it from.")
    kind: ImageKind = ImageKind.TEMPLATE
    format: ImageFormat = ImageFormat.QCOW2
    checksum: str | None = Field(default=None, description="{SHA-256}<hex>, {SHA-512}<hex> or an MD5.")
    zone: str = Field(default="default", min_length=1)


@router.post("/volumes/{volume}/resize", status_code=202, response_model=OperationOut, tags=["volumes"])
async def resize_volume(request: Request, key: Operator, volume: str, body: ResizeRequest) -> JSONResponse:
    """Grow a volume (or shrink it, with `allow_shrink`, where its plugin can)."""
    context = context_of(request)
    try:
        size = parse_size(body.size)
    except typer.BadParameter as error:
        raise InvalidArgument(str(error.message), field="size") from None
    info = await find_volume(context.asking(key), volume, timeout=context.settings.query_timeout_seconds)
    command = ResizeVolume(volume_id=info.volume_id, new_size_bytes=size, allow_shrink=body.allow_shrink)
    operation = await follow(
        context,
        key,
        kind="volume.resize",
        target=info.name,
        command=command,
        success=VolumeResized,
        failure=VolumeResizeFailed,
    )
    return accepted(operation)


@router.post("/snapshots/{snapshot_id}/revert", status_code=202, response_model=OperationOut, tags=["volumes"])
async def revert_snapshot(request: Request, key: Operator, snapshot_id: uuid.UUID) -> JSONResponse:
    """Revert a volume to one of its snapshots (refused while its VM runs: revert the VM instead)."""
    operation = await follow(
        context_of(request),
        key,
        kind="snapshot.revert",
        target=str(snapshot_id),
        command=RevertSnapshot(snapshot_id=snapshot_id),
        success=SnapshotReverted,
        failure=SnapshotRevertFailed,
    )
    return accepted(operation)


@router.get("/snapshot-policies", response_model=list[SnapshotPolicyInfo], tags=["volumes"])
async def list_policies(
    request: Request, key: Viewer, volume: Annotated[str | None, Query(max_length=128)] = None
) -> tuple[SnapshotPolicyInfo, ...]:
    """Snapshot policies, of one volume or all, with when each runs next."""
    context = context_of(request)
    client, timeout = context.asking(key), context.settings.query_timeout_seconds
    volume_id = (await find_volume(client, volume, timeout=timeout)).volume_id if volume else None
    return (
        await client.ask(ListSnapshotPolicies(volume_id=volume_id), SnapshotPoliciesListed, timeout=timeout)
    ).policies


@router.post("/snapshot-policies", status_code=202, response_model=OperationOut, tags=["volumes"])
async def create_policy(request: Request, key: Operator, body: PolicyRequest) -> JSONResponse:
    """Snapshot a volume on a schedule, keeping the newest `max_snaps` (checked before anything is sent)."""
    context = context_of(request)
    checked = checked_policy(uuid.UUID(int=0), body.interval, body.schedule, body.timezone, body.max_snaps)
    info = await find_volume(context.asking(key), body.volume, timeout=context.settings.query_timeout_seconds)
    operation = await follow(
        context,
        key,
        kind="snapshot_policy.create",
        target=info.name,
        command=checked.model_copy(update={"volume_id": info.volume_id}),
        success=SnapshotPolicyCreated,
        failure=SnapshotPolicyCreateFailed,
    )
    return accepted(operation)


@router.delete("/snapshot-policies/{policy_id}", status_code=202, response_model=OperationOut, tags=["volumes"])
async def delete_policy(request: Request, key: Operator, policy_id: uuid.UUID) -> JSONResponse:
    """Delete a policy (the snapshots it took stay)."""
    operation = await follow(
        context_of(request),
        key,
        kind="snapshot_policy.delete",
        target=str(policy_id),
        command=DeleteSnapshotPolicy(policy_id=policy_id),
        success=SnapshotPolicyDeleted,
        failure=SnapshotPolicyDeleteFailed,
    )
    return accepted(operation)


@router.delete("/backups/{backup_id}", status_code=202, response_model=OperationOut, tags=["backups"])
async def delete_backup(request: Request, key: Operator, backup_id: uuid.UUID) -> JSONResponse:
    """Delete a backup (each is logically full: no other depends on it)."""
    operation = await follow(
        context_of(request),
        key,
        kind="backup.delete",
        target=str(backup_id),
        command=DeleteBackup(backup_id=backup_id),
        success=BackupDeleted,
        failure=BackupDeleteFailed,
    )
    return accepted(operation)


@router.post("/backups/{backup_id}/verify", status_code=202, response_model=OperationOut, tags=["backups"])
async def verify_backup(request: Request, key: Operator, backup_id: uuid.UUID) -> JSONResponse:
    """Re-read every chunk of a backup; a bad one marks it refused for restores."""
    operation = await follow(
        context_of(request),
        key,
        kind="backup.verify",
        target=str(backup_id),
        command=VerifyBackup(backup_id=backup_id),
        success=BackupVerified,
        failure=BackupVerifyFailed,
    )
    return accepted(operation)


@router.post("/templates", status_code=202, response_model=OperationOut, tags=["templates"])
async def register_image(request: Request, key: Operator, body: RegisterRequest) -> JSONResponse:
    """Register a template or ISO; each image store of the zone then downloads and checks it (GET /templates)."""
    try:
        command = RegisterImage(
            image_id=uuid.uuid4(),
            name=body.name,
            kind=body.kind,
            format=body.format,
            zone_id=zone_id(body.zone),
            url=body.url,
            checksum=body.checksum,
        )
    except ValueError as error:
        raise invalid(error) from None
    operation = await follow(
        context_of(request),
        key,
        kind="image.register",
        target=body.name,
        command=command,
        success=ImageRegistered,
        failure=ImageRegisterFailed,
    )
    return accepted(operation)


@router.delete("/templates/{image}", status_code=202, response_model=OperationOut, tags=["templates"])
async def delete_image(
    request: Request, key: Operator, image: str, kind: ImageKind = ImageKind.TEMPLATE
) -> JSONResponse:
    """Delete a template or ISO from every image store (refused while volumes use it, naming them)."""
    context = context_of(request)
    info = await find_image(context.asking(key), image, kind, timeout=context.settings.query_timeout_seconds)
    operation = await follow(
        context,
        key,
        kind="image.delete",
        target=info.name,
        command=DeleteImage(image_id=info.image_id),
        success=ImageDeleted,
        failure=ImageDeleteFailed,
    )
    return accepted(operation)


class BackupScheduleRequest(BaseModel):
    """A backup schedule (`strata backup-schedule create`), in CloudStack's formats; the backup service checks it."""

    model_config = ConfigDict(extra="forbid")

    volume: str = Field(min_length=1, description="The volume's id or name.")
    repository: str = Field(min_length=1, description="The backup repository's id or name.")
    interval: str = Field(description="HOURLY, DAILY, WEEKLY or MONTHLY.")
    schedule: str = Field(description="MM, MM:HH, MM:HH:D (1 = Sunday) or MM:HH:DD.")
    timezone: str = Field(default="UTC")
    max_backups: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="How many of its newest backups to keep; by default 7 without keep rules, and with them the rules "
        "alone decide.",
    )
    keep: KeepRules | None = Field(default=None, description="Proxmox Backup Server's keep rules, besides max_backups.")


@router.post("/backup-schedules", status_code=202, response_model=OperationOut, tags=["backups"])
async def create_backup_schedule(request: Request, key: Operator, body: BackupScheduleRequest) -> JSONResponse:
    """Add a schedule to a volume (its other schedules stay); a bad schedule is refused by the backup service,
    naming the field, in the operation's error."""
    context = context_of(request)
    info = await find_volume(context.asking(key), body.volume, timeout=context.settings.query_timeout_seconds)
    async with context.pool.acquire() as connection:
        repositories = await repository_rows(connection, body.repository)
    if not repositories:
        raise NotFound(f"no backup repository {body.repository!r}", field="repository")
    try:
        command = CreateBackupSchedule(
            schedule_id=uuid.uuid4(),
            volume_id=info.volume_id,
            repository_id=uuid.UUID(repositories[0]["repository_id"]),
            interval_type=body.interval.upper(),  # type: ignore[arg-type]  # pydantic reads the enum's value
            schedule=body.schedule,
            timezone=body.timezone,
            max_backups=max_backups_or_default(body.max_backups, body.keep),
            keep=body.keep,
        )
    except ValueError as error:
        raise invalid(error) from None
    operation = await follow(
        context,
        key,
        kind="backup_schedule.create",
        target=info.name,
        command=command,
        success=BackupScheduleCreated,
        failure=BackupScheduleCreateFailed,
    )
    return accepted(operation)


@router.delete("/backup-schedules/{schedule_id}", status_code=202, response_model=OperationOut, tags=["backups"])
async def delete_backup_schedule(request: Request, key: Operator, schedule_id: uuid.UUID) -> JSONResponse:
    """Delete a backup schedule (the backups it took stay)."""
    operation = await follow(
        context_of(request),
        key,
        kind="backup_schedule.delete",
        target=str(schedule_id),
        command=DeleteBackupSchedule(schedule_id=schedule_id),
        success=BackupScheduleDeleted,
        failure=BackupScheduleDeleteFailed,
    )
    return accepted(operation)
