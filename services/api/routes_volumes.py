"""Volumes and snapshots: list, show, create (202), delete (202), as `strata volume` and `strata snapshot` do,
with the CLI's look-ups (services.cli.volume, services.cli.pool, services.cli.volume_dependents)."""

import uuid
from typing import Annotated

import typer
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from schemas import Command, Event
from schemas.chain import ChainDescribed, DescribeChain
from schemas.errors import InvalidArgument
from schemas.snapshot import (
    CreateSnapshot,
    DeleteSnapshot,
    SnapshotCreated,
    SnapshotCreateFailed,
    SnapshotDeleted,
    SnapshotDeleteFailed,
)
from schemas.snapshot_queries import ListSnapshots, SnapshotInfo, SnapshotsListed
from schemas.storage import (
    CreateVolume,
    DeleteVolume,
    VolumeCreated,
    VolumeCreateFailed,
    VolumeDeleted,
    VolumeDeleteFailed,
)
from schemas.storage_queries import ListVolumes, VolumeInfo, VolumesListed
from services.api.auth import caller, context_of
from services.api.context import ApiContext
from services.api.errors import ERROR_RESPONSES
from services.api.keys import ApiKey, Role
from services.api.models import CreateSnapshotRequest, CreateVolumeRequest, OperationOut
from services.api.operations import Operation, Tracker
from services.api.routes_pools import accepted
from services.cli.host import check_placement, known_hosts, vm_placement
from services.cli.pool import find_pool
from services.cli.talking import invalid, parse_size, zone_id
from services.cli.volume import find_volume
from services.cli.volume_dependents import dependents_of

router = APIRouter(prefix="/api/v1", tags=["volumes"], responses=ERROR_RESPONSES)
Viewer = Annotated[ApiKey, Depends(caller(Role.VIEWER))]
Operator = Annotated[ApiKey, Depends(caller(Role.OPERATOR))]


async def follow(
    context: ApiContext,
    key: ApiKey,
    *,
    kind: str,
    target: str,
    command: Command,
    success: type[Event],
    failure: type[Event],
) -> Operation:
    """Send `command` as `key` and follow it to its success or failure event, as an operation."""

    async def work(tracker: Tracker) -> Event:
        async with context.sending(key) as client:
            envelope = await client.publish(command)
            await tracker.sent(client, envelope, (success, failure))
            return await client.outcome(
                envelope, (success,), (failure,), timeout=context.settings.operation_timeout_seconds
            )

    return await context.operations.start(kind, target, key.actor, work)


@router.get("/volumes", response_model=list[VolumeInfo], summary="The volumes")
async def list_volumes(
    request: Request,
    key: Viewer,
    pool: Annotated[str | None, Query(max_length=128, description="Only this pool's (id or name).")] = None,
    include_expunged: Annotated[bool, Query(alias="all")] = False,
) -> tuple[VolumeInfo, ...]:
    """Volumes with their state, size and pool."""
    context = context_of(request)
    client, timeout = context.asking(key), context.settings.query_timeout_seconds
    pool_id = (await find_pool(client, pool, timeout=timeout)).pool_id if pool else None
    query = ListVolumes(pool_id=pool_id, include_expunged=include_expunged)
    return (await client.ask(query, VolumesListed, timeout=timeout)).volumes


@router.get("/volumes/{volume}", response_model=VolumeInfo, summary="One volume by id or name")
async def show_volume(request: Request, key: Viewer, volume: str) -> VolumeInfo:
    """One volume."""
    context = context_of(request)
    return await find_volume(context.asking(key), volume, timeout=context.settings.query_timeout_seconds)


async def start_create(context: ApiContext, key: ApiKey, body: CreateVolumeRequest) -> Operation:
    """Check a volume request as `strata volume create` does, then send it and follow it."""
    try:
        size_bytes = parse_size(body.size)
    except typer.BadParameter as error:
        raise InvalidArgument(str(error.message), field="size") from None
    try:
        command = CreateVolume(
            volume_id=uuid.uuid4(),
            name=body.name,
            size_bytes=size_bytes,
            zone_id=zone_id(body.zone),
            cluster_id=body.cluster,
            host=body.host,
            hypervisor=body.hypervisor,
            tags=frozenset(body.tags),
        )
    except ValueError as error:
        raise invalid(error) from None
    client, timeout = context.asking(key), context.settings.query_timeout_seconds
    hosts = await known_hosts(client, timeout=timeout) if body.host or body.cluster or body.vm else ()
    check_placement(hosts, host=body.host, cluster=body.cluster)
    if body.vm is not None:  # the VM must exist (one the agents' hypervisors report); its volume goes where it is
        vm_id, on, in_cluster = vm_placement(hosts, body.vm, host=body.host, cluster=body.cluster)
        command = command.model_copy(update={"vm_id": vm_id, "host": on, "cluster_id": in_cluster})
    if body.pool is not None:
        command = command.model_copy(update={"pool_id": (await find_pool(client, body.pool, timeout=timeout)).pool_id})
    return await follow(
        context,
        key,
        kind="volume.create",
        target=body.name,
        command=command,
        success=VolumeCreated,
        failure=VolumeCreateFailed,
    )


@router.post("/volumes", status_code=202, response_model=OperationOut, summary="Create a volume")
async def create_volume(request: Request, key: Operator, body: CreateVolumeRequest) -> JSONResponse:
    """The allocator picks a pool (or `pool`), an agent creates it; follow the operation to Ready."""
    return accepted(await start_create(context_of(request), key, body))


@router.delete("/volumes/{volume}", status_code=202, response_model=OperationOut, summary="Delete a volume")
async def delete_volume(request: Request, key: Operator, volume: str) -> JSONResponse:
    """Delete a volume; one with snapshots or policies is refused, naming them (`strata volume delete --cascade`
    deletes them first)."""
    context = context_of(request)
    client, timeout = context.asking(key), context.settings.query_timeout_seconds
    info = await find_volume(client, volume, timeout=timeout)
    refusal = (await dependents_of(client, info.volume_id, timeout=timeout)).refusal(info.name)
    if refusal is not None:
        raise refusal
    command = DeleteVolume(volume_id=info.volume_id)
    operation = await follow(
        context,
        key,
        kind="volume.delete",
        target=info.name,
        command=command,
        success=VolumeDeleted,
        failure=VolumeDeleteFailed,
    )
    return accepted(operation)


@router.get("/volumes/{volume}/chain", response_model=ChainDescribed, summary="A volume's snapshot chain")
async def volume_chain(request: Request, key: Viewer, volume: str) -> ChainDescribed:
    """Its fulls and deltas, the hidden snapshots kept for a child, what the live volume is layered on and the merges
    pending (`strata snapshot chain`)."""
    context = context_of(request)
    client, timeout = context.asking(key), context.settings.query_timeout_seconds
    info = await find_volume(client, volume, timeout=timeout)
    return await client.ask(DescribeChain(volume_id=info.volume_id), ChainDescribed, timeout=timeout)


@router.get("/snapshots", response_model=list[SnapshotInfo], summary="Snapshots, newest first")
async def list_snapshots(
    request: Request,
    key: Viewer,
    volume: Annotated[str | None, Query(max_length=128, description="Only this volume's (id or name).")] = None,
    include_destroyed: Annotated[bool, Query(alias="all")] = False,
) -> tuple[SnapshotInfo, ...]:
    """Snapshots with their kind, state and chain parent."""
    context = context_of(request)
    client, timeout = context.asking(key), context.settings.query_timeout_seconds
    volume_id = (await find_volume(client, volume, timeout=timeout)).volume_id if volume else None
    query = ListSnapshots(volume_id=volume_id, include_destroyed=include_destroyed)
    return (await client.ask(query, SnapshotsListed, timeout=timeout)).snapshots


@router.post("/snapshots", status_code=202, response_model=OperationOut, summary="Snapshot a volume")
async def create_snapshot(request: Request, key: Operator, body: CreateSnapshotRequest) -> JSONResponse:
    """Full or delta, as the chain rules decide."""
    context = context_of(request)
    info = await find_volume(context.asking(key), body.volume, timeout=context.settings.query_timeout_seconds)
    try:
        command = CreateSnapshot(
            snapshot_id=uuid.uuid4(), volume_id=info.volume_id, name=body.name or f"{info.name}-{uuid.uuid4().hex[:8]}"
        )
    except ValueError as error:
        raise invalid(error) from None
    operation = await follow(
        context,
        key,
        kind="snapshot.create",
        target=command.name,
        command=command,
        success=SnapshotCreated,
        failure=SnapshotCreateFailed,
    )
    return accepted(operation)


@router.delete("/snapshots/{snapshot_id}", status_code=202, response_model=OperationOut, summary="Delete a snapshot")
async def delete_snapshot(request: Request, key: Operator, snapshot_id: uuid.UUID) -> JSONResponse:
    """A delta's data are merged where the chain needs them."""
    command = DeleteSnapshot(snapshot_id=snapshot_id)
    operation = await follow(
        context_of(request),
        key,
        kind="snapshot.delete",
        target=str(snapshot_id),
        command=command,
        success=SnapshotDeleted,
        failure=SnapshotDeleteFailed,
    )
    return accepted(operation)
