"""The storage service's part of a migration: plan it (or refuse it up front, saying why), and switch the volume to
its destination copy (the saga's pivot).

The plan refuses what would fail later or leave the volume worse off: a volume that is not Ready or not on a pool,
a destination that is the source, not Up (disabled, in maintenance), in another zone, out of reach of the volume's
VM (its scope) or of another hypervisor, or over a capacity threshold with the volume on it (the allocator's rules).
Where one agent reaches both pools (the same host, or a host or cluster of the other pool's cluster) and both
plugins can copy volumes in and out, that agent copies the volume directly (`direct`); otherwise it is copied
through a zone-wide store (`staged`), which the saga can also be asked for. Native migration needs both plugins to
claim it, and the same plugin on both sides (the pair must understand each other); no agent performs one yet.
"""

from dataclasses import replace

from bus.ports import UnitOfWork
from plugins.sdk.capabilities import Capability
from schemas import Envelope
from schemas.errors import FailedPrecondition, InvalidArgument, NotFound, StrataError
from schemas.migration import (
    MigrationMethod,
    MigrationPlanned,
    PlanMigration,
    SwitchVolumePool,
    VolumeMigrateFailed,
    VolumePoolSwitched,
)
from schemas.storage import PoolScope, PoolState, VolumeState
from services.domain.allocator import AllocationRequest, allocate
from services.storage import repository
from services.storage.context import Storage, agent_route, answer, emit, refuse, volume_resource
from services.storage.repository import PoolRow, VolumeRow


async def plan_migration(command: PlanMigration, envelope: Envelope, uow: UnitOfWork, storage: Storage) -> None:
    """Answer with the migration's plan, or refuse it with the reason (nothing changes either way)."""
    try:
        planned = await _plan(uow, command, storage)
    except StrataError as error:
        refuse(
            uow,
            envelope,
            error,
            VolumeMigrateFailed(volume_id=command.volume_id, pool_id=command.pool_id, error=error.info()),
            storage,
        )
        return
    answer(uow, envelope, planned, storage)


async def _plan(uow: UnitOfWork, command: PlanMigration, storage: Storage) -> MigrationPlanned:
    volume = await repository.get_volume(uow.connection, command.volume_id)
    if volume.state is not VolumeState.READY and volume.state is not VolumeState.MIGRATING:
        raise FailedPrecondition(
            f"volume {volume.volume_id} is {volume.state}: a migration needs it Ready", field="volume_id"
        )
    if volume.pool_id is None:
        raise FailedPrecondition(f"volume {volume.volume_id} is on no pool", field="volume_id")
    if volume.pool_id == command.pool_id:
        raise InvalidArgument(f"volume {volume.volume_id} is already on pool {command.pool_id}", field="pool_id")
    source = await repository.get_pool(uow.connection, volume.pool_id)
    try:
        target = await repository.get_pool(uow.connection, command.pool_id)
    except NotFound:
        raise NotFound(f"destination pool {command.pool_id} does not exist", field="pool_id") from None
    _check_destination(volume, source, target, storage)
    method, why = _method(source, target, storage)
    direct = None if command.staged else _direct_route(source, target)
    copiers = all(
        Capability.COPY in storage.plugins.get(pool.plugin).manifest.capabilities for pool in (source, target)
    )
    if direct is not None and copiers:
        via = f"host {direct[0]}" if direct[0] else f"cluster {direct[1]}"
        method, why = MigrationMethod.DIRECT, f"one agent ({via}) reaches both pools: it copies the volume directly"
    elif command.staged:
        why = "asked to copy through the zone's store"
    elif direct is None:
        why = f"no one agent reaches both pools: the copy goes through the zone's store ({why})"
    source_host, source_cluster = agent_route(source)
    host, cluster_id = agent_route(target)
    return MigrationPlanned(
        volume_id=volume.volume_id,
        size_bytes=volume.size_bytes,
        zone_id=volume.zone_id,
        source_pool_id=source.pool_id,
        source_host=source_host,
        source_cluster_id=source_cluster,
        pool_id=target.pool_id,
        host=host,
        cluster_id=cluster_id,
        method=method,
        why=why,
        direct_host=direct[0] if direct and method is MigrationMethod.DIRECT else None,
        direct_cluster_id=direct[1] if direct and method is MigrationMethod.DIRECT else None,
    )


def _direct_route(source: PoolRow, target: PoolRow) -> tuple[str | None, str | None] | None:
    """The one agent that reaches both pools, as (host, cluster_id) like `agent_route`; None if no agent does.

    A host-scoped pool is reached by its host's agent only; any other pool by every agent of its cluster.
    """
    source_host = source.host if source.scope is PoolScope.HOST else None
    target_host = target.host if target.scope is PoolScope.HOST else None
    if source_host and target_host:
        return (source_host, None) if source_host == target_host else None
    if source_host or target_host:
        return (source_host or target_host, None) if source.cluster_id == target.cluster_id else None
    if source.cluster_id and source.cluster_id == target.cluster_id:
        return None, source.cluster_id
    return None


def _check_destination(volume: VolumeRow, source: PoolRow, target: PoolRow, storage: Storage) -> None:
    """FailedPrecondition or ResourceExhausted, with the allocator's reason, if the target may not take it."""
    if target.state is not PoolState.UP:
        raise FailedPrecondition(
            f"destination pool {target.name} is {target.state}: only an Up pool takes a volume", field="pool_id"
        )
    if source.hypervisors and target.hypervisors and not source.hypervisors & target.hypervisors:
        raise FailedPrecondition(
            f"destination pool {target.name} serves {', '.join(sorted(target.hypervisors))}, not the hypervisor of "
            f"the volume's pool ({', '.join(sorted(source.hypervisors))})",
            field="pool_id",
        )
    # A VM's volume must stay reachable from where the VM runs: the source pool's host or cluster stands for it.
    reach_host = source.host if volume.vm_id is not None and source.scope is PoolScope.HOST else None
    reach_cluster = source.cluster_id if volume.vm_id is not None else None
    if volume.vm_id is not None and target.scope is PoolScope.HOST and target.host != reach_host:
        raise FailedPrecondition(
            f"destination pool {target.name} is local to host {target.host}: VM {volume.vm_id}'s volume must stay "
            "reachable from the VM's host (move a detached volume, or choose a pool of the VM's host or cluster)",
            field="pool_id",
        )
    request = AllocationRequest(
        size_bytes=volume.size_bytes,
        zone_id=volume.zone_id,
        cluster_id=reach_cluster,
        host=reach_host if reach_host is not None else target.host,
    )
    allocation = allocate(request, [target.view()], storage.thresholds)
    if not allocation.candidates:
        reason = allocation.skipped[0].reason if allocation.skipped else "it cannot take the volume"
        raise FailedPrecondition(f"destination pool {target.name} may not take the volume: {reason}", field="pool_id")


def _method(source: PoolRow, target: PoolRow, storage: Storage) -> tuple[MigrationMethod, str]:
    """Native when both plugins claim it and they are the same plugin; staged otherwise, saying why."""
    lacking = [
        pool.plugin
        for pool in (source, target)
        if Capability.NATIVE_MIGRATION not in storage.plugins.get(pool.plugin).manifest.capabilities
    ]
    if lacking:
        return MigrationMethod.STAGED, f"{' and '.join(sorted(set(lacking)))} cannot migrate natively"
    if source.plugin != target.plugin:
        return MigrationMethod.STAGED, f"{source.plugin} and {target.plugin} cannot migrate to each other natively"
    return MigrationMethod.NATIVE, f"both pools are {source.plugin}, which migrates natively"


async def switch_volume_pool(command: SwitchVolumePool, envelope: Envelope, uow: UnitOfWork, storage: Storage) -> None:
    """Make the destination copy the volume: its pool and locator change (again: already switched is fine)."""
    try:
        await repository.check_fencing(uow.connection, volume_resource(command.volume_id), envelope.fencing_token)
        volume = await repository.get_volume(uow.connection, command.volume_id)
        source_pool_id = volume.pool_id
        if volume.pool_id != command.pool_id:
            if volume.state is not VolumeState.MIGRATING or source_pool_id is None:
                raise FailedPrecondition(
                    f"volume {volume.volume_id} is {volume.state}: only a Migrating volume is switched to another pool",
                    field="volume_id",
                )
            await repository.get_pool(uow.connection, command.pool_id)
            await repository.save_volume(
                uow.connection, replace(volume, pool_id=command.pool_id, locator=command.locator)
            )
            switched = VolumePoolSwitched(
                volume_id=volume.volume_id,
                source_pool_id=source_pool_id,
                pool_id=command.pool_id,
                locator=command.locator,
            )
            emit(uow, envelope, switched, storage)
        else:
            switched = VolumePoolSwitched(
                volume_id=volume.volume_id, pool_id=command.pool_id, locator=volume.locator or command.locator
            )
    except StrataError as error:
        refuse(
            uow,
            envelope,
            error,
            VolumeMigrateFailed(volume_id=command.volume_id, pool_id=command.pool_id, error=error.info()),
            storage,
        )
        return
    if envelope.saga_id is not None:
        answer(uow, envelope, switched, storage)
