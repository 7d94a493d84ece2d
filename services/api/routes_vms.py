"""VMs as the agents' hypervisors report them, with their volumes and VM snapshots; a VM snapshot taken (202) and a
VM reverted to one (202, the revert saga), as `strata vm list|snapshot|revert` do."""

import uuid
from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from sagas.work import saga_id_for
from schemas.errors import NotFound
from schemas.snapshot import (
    CreateVmSnapshot,
    RevertVmToSnapshot,
    VmReverted,
    VmRevertFailed,
    VmSnapshotCreated,
    VmSnapshotCreateFailed,
    VolumeSnapshotPair,
)
from schemas.snapshot_queries import ListSnapshots, SnapshotsListed
from schemas.storage_queries import ListVolumes, VolumesListed
from services.api.auth import caller, context_of
from services.api.errors import ERROR_RESPONSES
from services.api.keys import ApiKey, Role
from services.api.models import OperationOut
from services.api.operations import Tracker
from services.api.routes_pools import accepted
from services.api.routes_volumes import follow
from services.cli.host import check_placement, host_of_vm, known_hosts, vm_id_of
from services.cli.running import ORCHESTRATOR, SNAPSHOT, STORAGE, agent_of, require_running
from services.cli.talking import invalid

router = APIRouter(prefix="/api/v1", tags=["vms"], responses=ERROR_RESPONSES)
Viewer = Annotated[ApiKey, Depends(caller(Role.VIEWER))]
Operator = Annotated[ApiKey, Depends(caller(Role.OPERATOR))]
JsonObject = dict[str, Any]  # Any: JSON values


class VmSnapshotRequest(BaseModel):
    """A VM snapshot to take (`strata vm snapshot`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)


class RevertRequest(BaseModel):
    """The VM snapshot to revert a VM to (`strata vm revert`)."""

    model_config = ConfigDict(extra="forbid")

    vm_snapshot_id: uuid.UUID
    host: str | None = Field(default=None, description="The VM's host; default: the one whose agent reports it.")


@router.get("/vms")
async def list_vms(request: Request, key: Viewer) -> list[JsonObject]:
    """Every VM the registered hosts report: host, power state, its strata volumes and its VM snapshots."""
    context = context_of(request)
    client, timeout = context.asking(key), context.settings.query_timeout_seconds
    hosts = await known_hosts(client, timeout=timeout)
    volumes = (await client.ask(ListVolumes(), VolumesListed, timeout=timeout)).volumes
    snapshots = (await client.ask(ListSnapshots(), SnapshotsListed, timeout=timeout)).snapshots
    found = []
    for info in hosts:
        for vm in info.vms:
            mine = [volume for volume in volumes if volume.vm_id == vm.vm_id]
            ids = {volume.volume_id for volume in mine}
            groups: dict[uuid.UUID, list[JsonObject]] = defaultdict(list)
            for snapshot in snapshots:
                if snapshot.vm_snapshot_id is not None and snapshot.volume_id in ids:
                    groups[snapshot.vm_snapshot_id].append(snapshot.model_dump(mode="json"))
            found.append(
                {
                    "vm_id": str(vm.vm_id),
                    "name": vm.name,
                    "host": info.identity.host,
                    "power_state": vm.power_state.value,
                    "volumes": [volume.model_dump(mode="json", exclude={"locator"}) for volume in mine],
                    "vm_snapshots": [
                        {"vm_snapshot_id": str(group), "snapshots": members} for group, members in groups.items()
                    ],
                }
            )
    return found


@router.post("/vms/{vm}/snapshots", status_code=202, response_model=OperationOut)
async def snapshot_vm(request: Request, key: Operator, vm: str, body: VmSnapshotRequest) -> JSONResponse:
    """Snapshot every volume of a VM together (a running VM is stopped meanwhile and started again)."""
    context = context_of(request)
    client, timeout = context.asking(key), context.settings.query_timeout_seconds
    hosts = await known_hosts(client, timeout=timeout)
    vm_id = vm_id_of(hosts, vm)
    volumes = (await client.ask(ListVolumes(vm_id=vm_id), VolumesListed, timeout=timeout)).volumes
    if not volumes:
        raise NotFound(f"the storage service knows no volume of VM {vm}", field="vm")
    try:
        command = CreateVmSnapshot(
            vm_snapshot_id=uuid.uuid4(),
            vm_id=vm_id,
            name=body.name,
            volume_ids=tuple(volume.volume_id for volume in volumes),
            host=host_of_vm(hosts, vm_id),
        )
    except ValueError as error:
        raise invalid(error) from None
    operation = await follow(
        context,
        key,
        kind="vm.snapshot",
        target=vm,
        command=command,
        success=VmSnapshotCreated,
        failure=VmSnapshotCreateFailed,
    )
    return accepted(operation)


@router.post("/vms/{vm}/revert", status_code=202, response_model=OperationOut)
async def revert_vm(request: Request, key: Operator, vm: str, body: RevertRequest) -> JSONResponse:
    """Revert every volume of a VM to a VM snapshot (the revert saga: a running VM is stopped and started again);
    the operation's result names the saga, whose timeline GET /sagas/{id} shows."""
    context = context_of(request)
    client, timeout = context.asking(key), context.settings.query_timeout_seconds
    hosts = await known_hosts(client, timeout=timeout)
    check_placement(hosts, host=body.host, cluster=None)
    vm_id = vm_id_of(hosts, vm)
    snapshots = await client.ask(ListSnapshots(vm_snapshot_id=body.vm_snapshot_id), SnapshotsListed, timeout=timeout)
    if not snapshots.snapshots:
        raise NotFound(f"no snapshot of VM snapshot {body.vm_snapshot_id} is recorded", field="vm_snapshot_id")
    pairs = tuple(VolumeSnapshotPair(volume_id=s.volume_id, snapshot_id=s.snapshot_id) for s in snapshots.snapshots)
    host = body.host or host_of_vm(hosts, vm_id)
    try:
        command = RevertVmToSnapshot(vm_id=vm_id, vm_snapshot_id=body.vm_snapshot_id, host=host, snapshots=pairs)
    except ValueError as error:
        raise invalid(error) from None
    await require_running(context.transport, [ORCHESTRATOR, STORAGE, SNAPSHOT, agent_of(host)])

    async def work(tracker: Tracker) -> JsonObject:
        async with context.sending(key) as sending:
            envelope = await sending.publish(command)
            await tracker.sent(sending, envelope, (VmReverted, VmRevertFailed))
            saga_id = saga_id_for(envelope.message_id)
            tracker.operation.note("saga", saga_id=str(saga_id))
            reverted = await sending.outcome(
                envelope, (VmReverted,), (VmRevertFailed,), timeout=context.settings.operation_timeout_seconds
            )
        return {**reverted.model_dump(mode="json"), "saga_id": str(saga_id)}

    return accepted(await context.operations.start("vm.revert", vm, key.actor, work))
