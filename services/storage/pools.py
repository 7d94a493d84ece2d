"""Pool handlers: add (plugin by name, config validated, attached by an agent), enable, disable, maintenance,
delete, and what the agents report back. Load, decide (services.domain), record, emit.

A refused request changes nothing and is answered with `pool.add.failed` or `pool.operation.failed`. A pool's
configuration is validated here and passed once to the agents; it is never stored by this service, logged, or
repeated in an error (the registry's validation names the field, never the value).
"""

from dataclasses import replace
from uuid import UUID

import structlog

from bus.ports import UnitOfWork
from plugins.registry import validate_config
from plugins.sdk import Capability, Role, Scope
from schemas import Envelope
from schemas.agent import (
    AttachPoolToHost,
    DetachPoolFromHost,
    PoolAttachedToHost,
    PoolAttachToHostFailed,
    PoolDetachedFromHost,
    PoolDetachFromHostFailed,
    PoolStatsFailed,
    PoolStatsReported,
)
from schemas.errors import AlreadyExists, FailedPrecondition, InvalidArgument, StrataError
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
    PoolOperationFailed,
    PoolScope,
    PoolState,
    PoolStateChanged,
    PoolStatsCollected,
    VolumeState,
)
from services.domain.pools import POOL_STATES, PoolEvent
from services.storage import repository
from services.storage.context import Storage, agent_route, emit
from services.storage.repository import IN_FLIGHT_STATES, Connection, PoolRow

log = structlog.get_logger(__name__)


async def add_pool(command: AddPool, envelope: Envelope, uow: UnitOfWork, storage: Storage) -> None:
    """Validate the plugin and its config, record the pool Initial, and ask the agents to attach it."""
    existing = await repository.find_pool(uow.connection, command.pool_id)
    if existing is not None:
        _answer_repeat(uow, envelope, storage, existing)
        return
    try:
        pool = await _new_pool(uow.connection, command, storage)
    except StrataError as error:
        emit(uow, envelope, PoolAddFailed(pool_id=command.pool_id, error=error.info()), storage)
        return
    await repository.insert_pool(uow.connection, pool)
    route = agent_route(pool)
    attach = AttachPoolToHost(
        pool_id=pool.pool_id, plugin=pool.plugin, config=command.config, host=route[0], cluster_id=route[1]
    )
    emit(uow, envelope, attach, storage)


def _answer_repeat(uow: UnitOfWork, envelope: Envelope, storage: Storage, pool: PoolRow) -> None:
    """The same `pool.add` again gets the same answer; one still being attached will get it when it is."""
    log.info("pool.add repeated", pool_id=str(pool.pool_id), state=pool.state)
    if pool.state is PoolState.INITIAL:
        return
    if pool.state is PoolState.REMOVED:
        error = AlreadyExists(f"pool id {pool.pool_id} belongs to a removed pool: choose a new id", field="pool_id")
        emit(uow, envelope, PoolAddFailed(pool_id=pool.pool_id, error=error.info()), storage)
        return
    emit(uow, envelope, _added(pool, pool.capacity_bytes, pool.used_bytes), storage)


def _added(pool: PoolRow, capacity_bytes: int, used_bytes: int) -> PoolAdded:
    return PoolAdded(
        pool_id=pool.pool_id,
        name=pool.name,
        plugin=pool.plugin,
        scope=pool.scope,
        zone_id=pool.zone_id,
        cluster_id=pool.cluster_id,
        host=pool.host,
        hypervisors=pool.hypervisors,
        tags=pool.tags,
        capacity_bytes=capacity_bytes,
        used_bytes=used_bytes,
    )


async def _new_pool(connection: Connection, command: AddPool, storage: Storage) -> PoolRow:
    plugin = storage.plugins.get(command.plugin)
    manifest = plugin.manifest
    if Role.PRIMARY not in manifest.roles:
        raise InvalidArgument(f"plugin {command.plugin!r} does not serve primary storage", field="plugin")
    if Scope(command.scope.value) not in manifest.scopes:
        scopes = ", ".join(sorted(manifest.scopes))
        raise InvalidArgument(f"plugin {command.plugin!r} serves {scopes} scope, not {command.scope}", field="scope")
    masked = validate_config(plugin, command.config).model_dump(mode="json")  # SecretStr dumps as '**********'
    if command.scope in (PoolScope.ZONE, PoolScope.REGION) and not command.cluster_id:
        raise InvalidArgument(
            f"a {command.scope}-scoped pool needs cluster_id: the cluster whose agents attach it", field="cluster_id"
        )
    if await repository.name_taken(connection, command.zone_id, command.name):
        raise AlreadyExists(f"a pool named {command.name!r} exists in zone {command.zone_id}", field="name")
    return PoolRow(
        pool_id=command.pool_id,
        name=command.name,
        plugin=command.plugin,
        state=PoolState.INITIAL,
        scope=command.scope,
        zone_id=command.zone_id,
        cluster_id=command.cluster_id,
        host=command.host,
        hypervisors=frozenset(command.hypervisors),
        tags=frozenset(command.tags),
        thin_provisioned=Capability.THIN_PROVISIONING in manifest.capabilities,
        masked_config=masked,
        thresholds=command.thresholds,
    )


async def pool_attached(event: PoolAttachedToHost, envelope: Envelope, uow: UnitOfWork, storage: Storage) -> None:
    """An agent reaches the pool: a new pool goes Up (`pool.added`); a known one gets fresh statistics."""
    pool = await repository.find_pool(uow.connection, event.pool_id, lock=True)
    if pool is None or envelope.saga_id is not None:
        return
    await repository.set_pool_stats(uow.connection, pool.pool_id, event.capacity_bytes, event.used_bytes)
    if pool.state is not PoolState.INITIAL:
        return
    await _move(uow, envelope, storage, pool, PoolEvent.OPERATION_SUCCEEDED)
    emit(uow, envelope, _added(pool, event.capacity_bytes, event.used_bytes), storage)


async def pool_attach_failed(
    event: PoolAttachToHostFailed, envelope: Envelope, uow: UnitOfWork, storage: Storage
) -> None:
    """No agent could attach a new pool: it is Removed and the add failed with the agent's reason."""
    pool = await repository.find_pool(uow.connection, event.pool_id, lock=True)
    if pool is None or pool.state is not PoolState.INITIAL or envelope.saga_id is not None:
        return
    await _move(uow, envelope, storage, pool, PoolEvent.OPERATION_FAILED, reason=event.error.message)
    emit(uow, envelope, PoolAddFailed(pool_id=pool.pool_id, error=event.error), storage)


async def enable_pool(command: EnablePool, envelope: Envelope, uow: UnitOfWork, storage: Storage) -> None:
    """Disabled -> Up."""
    await _request(uow, envelope, storage, command, PoolEvent.ENABLE_REQUESTED)


async def disable_pool(command: DisablePool, envelope: Envelope, uow: UnitOfWork, storage: Storage) -> None:
    """Up -> Disabled: existing volumes keep working, no new one is placed."""
    await _request(uow, envelope, storage, command, PoolEvent.DISABLE_REQUESTED)


async def maintain_pool(command: MaintainPool, envelope: Envelope, uow: UnitOfWork, storage: Storage) -> None:
    """Up -> PrepareForMaintenance, then Maintenance once no volume operation is in flight on the pool."""
    pool = await _request(uow, envelope, storage, command, PoolEvent.MAINTENANCE_REQUESTED)
    if pool is not None:
        await settle_maintenance(uow, envelope, storage, pool.pool_id)


async def cancel_maintenance(
    command: CancelPoolMaintenance, envelope: Envelope, uow: UnitOfWork, storage: Storage
) -> None:
    """Maintenance (or preparing for it) -> CancelMaintenance -> Up."""
    pool = await _request(uow, envelope, storage, command, PoolEvent.CANCEL_MAINTENANCE_REQUESTED)
    if pool is not None:
        await _move(uow, envelope, storage, pool, PoolEvent.OPERATION_SUCCEEDED)


async def delete_pool(command: DeletePool, envelope: Envelope, uow: UnitOfWork, storage: Storage) -> None:
    """Disabled or in Maintenance -> Removed, and an agent releases the storage; refused while any volume is on
    the pool."""
    pool = await _request(uow, envelope, storage, command, PoolEvent.DELETE_REQUESTED)
    if pool is not None:
        host, cluster_id = agent_route(pool)
        emit(uow, envelope, DetachPoolFromHost(pool_id=pool.pool_id, host=host, cluster_id=cluster_id), storage)


async def pool_detached(event: PoolDetachedFromHost, envelope: Envelope, uow: UnitOfWork, storage: Storage) -> None:
    """A removed pool's storage is released: nothing is left to do."""
    log.info("pool storage released", pool_id=str(event.pool_id), host=event.host)


async def pool_detach_failed(
    event: PoolDetachFromHostFailed, envelope: Envelope, uow: UnitOfWork, storage: Storage
) -> None:
    """A removed pool's storage could not be released: the pool stays Removed; the operator cleans the storage."""
    log.warning("pool storage not released", pool_id=str(event.pool_id), host=event.host, error=event.error.message)


async def settle_maintenance(uow: UnitOfWork, cause: Envelope, storage: Storage, pool_id: UUID | None) -> None:
    """Finish entering maintenance if the pool waits for it and no volume operation is in flight any more."""
    if pool_id is None:
        return
    pool = await repository.find_pool(uow.connection, pool_id, lock=True)
    if pool is None or pool.state is not PoolState.PREPARE_FOR_MAINTENANCE:
        return
    if await repository.count_volumes(uow.connection, pool.pool_id, IN_FLIGHT_STATES) == 0:
        await _move(uow, cause, storage, pool, PoolEvent.OPERATION_SUCCEEDED)


async def _request(
    uow: UnitOfWork, envelope: Envelope, storage: Storage, command: PoolCommand, event: PoolEvent
) -> PoolRow | None:
    """Apply a user's request to a pool, or answer `pool.operation.failed` and change nothing."""
    try:
        pool = await repository.get_pool(uow.connection, command.pool_id, lock=True)
        if event is PoolEvent.DELETE_REQUESTED:
            await _refuse_while_volumes(uow.connection, pool)
        moved = await _move(uow, envelope, storage, pool, event)
    except StrataError as error:
        failed = PoolOperationFailed(pool_id=command.pool_id, operation=command.message_type, error=error.info())
        emit(uow, envelope, failed, storage)
        return None
    return moved


async def _refuse_while_volumes(connection: Connection, pool: PoolRow) -> None:
    remaining = await repository.count_volumes(
        connection, pool.pool_id, frozenset(VolumeState) - {VolumeState.EXPUNGED}
    )
    if remaining:
        raise FailedPrecondition(
            f"pool {pool.name} ({pool.pool_id}) still holds {remaining} volume(s): delete or migrate them first",
            field="pool_id",
        )


async def _move(
    uow: UnitOfWork, cause: Envelope, storage: Storage, pool: PoolRow, event: PoolEvent, *, reason: str | None = None
) -> PoolRow:
    """Apply `event` to the pool (FailedPrecondition if illegal), record it and emit the state change."""
    new_state = POOL_STATES.next_state(pool.pool_id, pool.state, event)
    await repository.set_pool_state(uow.connection, pool.pool_id, new_state)
    changed = PoolStateChanged(pool_id=pool.pool_id, old_state=pool.state, new_state=new_state, reason=reason)
    emit(uow, cause, changed, storage)
    return replace(pool, state=new_state)


async def pool_stats_reported(event: PoolStatsReported, envelope: Envelope, uow: UnitOfWork, storage: Storage) -> None:
    """Record an agent's statistics of a pool and publish them with the allocated total."""
    pool = await repository.find_pool(uow.connection, event.pool_id)
    if pool is None:
        return
    await repository.set_pool_stats(uow.connection, pool.pool_id, event.capacity_bytes, event.used_bytes)
    collected = PoolStatsCollected(
        pool_id=pool.pool_id,
        capacity_bytes=event.capacity_bytes,
        used_bytes=event.used_bytes,
        allocated_bytes=pool.allocated_bytes,
        read_iops=event.read_iops,
        write_iops=event.write_iops,
    )
    emit(uow, envelope, collected, storage)


async def pool_stats_failed(event: PoolStatsFailed, envelope: Envelope, uow: UnitOfWork, storage: Storage) -> None:
    """An agent could not read a pool's statistics: the last ones stay; the operator sees it in the logs."""
    log.warning("pool statistics not collected", pool_id=str(event.pool_id), host=event.host, error=event.error.message)
