"""Volume handlers: create (allocate a pool, an agent creates it), delete (Destroy -> Expunging -> Expunged),
and begin/end of the long operations sagas run. Load, decide (services.domain), record, emit.

A refused request changes nothing and is answered with the matching `...Failed` event (or StepFailed for a saga's
step). The agents' answers to commands a saga sent directly are the saga's, not this service's: they are ignored.
"""

from dataclasses import replace
from uuid import UUID

import structlog

from bus.ports import UnitOfWork
from schemas import Envelope
from schemas.agent import (
    CreateVolumeOnPool,
    DeleteVolumeOnPool,
    VolumeCreatedOnPool,
    VolumeCreateOnPoolFailed,
    VolumeDeletedOnPool,
    VolumeDeleteOnPoolFailed,
)
from schemas.errors import AlreadyExists, FailedPrecondition, ResourceExhausted, StrataError
from schemas.image import CreateVolumeFromTemplate
from schemas.storage import (
    BeginVolumeOperation,
    CreateVolume,
    DeleteVolume,
    EndVolumeOperation,
    PoolScope,
    PoolState,
    VolumeCreated,
    VolumeCreateFailed,
    VolumeDeleted,
    VolumeDeleteFailed,
    VolumeOperationFailed,
    VolumeState,
)
from services.domain.allocator import AllocationRequest, allocate
from services.domain.volumes import VOLUME_STATES, VolumeEvent, operation_event, operation_state
from services.storage import repository
from services.storage.context import (
    POOL_STATES_WITHOUT_OPERATIONS,
    Storage,
    agent_route,
    answer,
    conclude,
    emit,
    refuse,
    saga_request_of,
    volume_moved,
    volume_resource,
)
from services.storage.pools import settle_maintenance
from services.storage.repository import PoolRow, VolumeRow

log = structlog.get_logger(__name__)


async def move_volume(
    uow: UnitOfWork, cause: Envelope, storage: Storage, volume: VolumeRow, event: VolumeEvent
) -> VolumeRow:
    """Apply `event` to the volume (FailedPrecondition if illegal), record it and emit the state change."""
    moved = volume.moved(VOLUME_STATES.next_state(volume.volume_id, volume.state, event))
    saved = await repository.save_volume(uow.connection, moved)
    emit(uow, cause, volume_moved(volume, saved.state, saved.version), storage)
    return saved


# ------------------------------------------------------------------------------------------------- create


async def create_volume(command: CreateVolume, envelope: Envelope, uow: UnitOfWork, storage: Storage) -> None:
    """Place the volume on a pool (the one named, or the allocator's best) and ask an agent to create it."""
    existing = await repository.find_volume(uow.connection, command.volume_id)
    if existing is not None:
        _answer_repeat(uow, envelope, storage, existing)
        return
    try:
        pool = await _place(uow, command, storage)
    except NoPoolFits as error:
        failed = VolumeCreateFailed(volume_id=command.volume_id, error=error.info(), skipped_pools=error.skipped)
        refuse(uow, envelope, error, failed, storage)
        return
    except StrataError as error:
        refuse(uow, envelope, error, VolumeCreateFailed(volume_id=command.volume_id, error=error.info()), storage)
        return
    allocated = VolumeRow(
        volume_id=command.volume_id,
        name=command.name,
        state=VolumeState.ALLOCATED,
        size_bytes=command.size_bytes,
        zone_id=command.zone_id,
        pool_id=pool.pool_id,
        vm_id=command.vm_id,
        saga_request=saga_request_of(envelope),
    )
    await move_volume(uow, envelope, storage, allocated, VolumeEvent.CREATE_REQUESTED)
    route = agent_route(pool)
    on_pool: CreateVolumeOnPool | CreateVolumeFromTemplate = CreateVolumeOnPool(
        pool_id=pool.pool_id,
        volume_id=command.volume_id,
        size_bytes=command.size_bytes,
        host=route[0],
        cluster_id=route[1],
    )
    if command.template_id is not None:
        # The image service knows the template's stores: it sends the agent the volume to make on the pool's base
        # copy, and the agent's answer comes back here as for an empty volume.
        on_pool = CreateVolumeFromTemplate(
            volume_id=command.volume_id,
            template_id=command.template_id,
            pool_id=pool.pool_id,
            zone_id=pool.zone_id,
            size_bytes=command.size_bytes,
            host=route[0],
            cluster_id=route[1],
        )
    emit(uow, envelope, on_pool, storage)


def _answer_repeat(uow: UnitOfWork, envelope: Envelope, storage: Storage, volume: VolumeRow) -> None:
    """The same `volume.create` again gets the same answer; one still being created will get it when it is."""
    log.info("volume.create repeated", volume_id=str(volume.volume_id), state=volume.state)
    if volume.state is VolumeState.CREATING:
        return
    if volume.state is VolumeState.READY and volume.pool_id is not None:
        created = VolumeCreated(
            volume_id=volume.volume_id,
            pool_id=volume.pool_id,
            size_bytes=volume.size_bytes,
            vm_id=volume.vm_id,
            entity_version=volume.version,
        )
        conclude(uow, envelope, saga_request_of(envelope), created, storage)
        return
    error = AlreadyExists(f"volume {volume.volume_id} exists and is {volume.state}", field="volume_id")
    refuse(uow, envelope, error, VolumeCreateFailed(volume_id=volume.volume_id, error=error.info()), storage)


async def _place(uow: UnitOfWork, command: CreateVolume, storage: Storage) -> PoolRow:
    request = AllocationRequest(
        size_bytes=command.size_bytes,
        zone_id=command.zone_id,
        cluster_id=command.cluster_id,
        host=command.host,
        hypervisor=command.hypervisor,
        tags=frozenset(command.tags),
    )
    if command.pool_id is not None:
        pools = [await repository.get_pool(uow.connection, command.pool_id, lock=True)]
        if command.host is None and command.vm_id is None and pools[0].scope is PoolScope.HOST:
            # A volume for no VM yet, on the host-local pool the caller named: it lives on that pool's host.
            request = replace(request, host=pools[0].host, cluster_id=command.cluster_id or pools[0].cluster_id)
    else:
        pools = await repository.list_pools(uow.connection, zone_id=command.zone_id)
    by_id = {pool.pool_id: pool for pool in pools}
    allocation = allocate(request, [pool.view() for pool in pools], storage.thresholds)
    try:
        return by_id[allocation.best().pool.pool_id]
    except ResourceExhausted as error:
        raise NoPoolFits(error.message, allocation.skipped_reasons()) from None


class NoPoolFits(ResourceExhausted):
    """No pool can take the volume; `skipped` says why for each pool (the failed event carries it)."""

    def __init__(self, message: str, skipped: dict[str, str]) -> None:
        super().__init__(message, field="size_bytes")
        self.skipped = skipped


async def volume_created(event: VolumeCreatedOnPool, envelope: Envelope, uow: UnitOfWork, storage: Storage) -> None:
    """The agent created the data: Creating -> Ready, `volume.created`."""
    volume = await awaited(uow, envelope, event.volume_id, VolumeState.CREATING)
    if volume is None:
        return
    done = replace(volume, locator=event.locator, saga_request=None)
    ready = await move_volume(uow, envelope, storage, done, VolumeEvent.OPERATION_SUCCEEDED)
    created = VolumeCreated(
        volume_id=ready.volume_id,
        pool_id=event.pool_id,
        size_bytes=ready.size_bytes,
        vm_id=ready.vm_id,
        entity_version=ready.version,
    )
    conclude(uow, envelope, volume.saga_request, created, storage)
    await settle_maintenance(uow, envelope, storage, ready.pool_id)


async def volume_create_failed(
    event: VolumeCreateOnPoolFailed, envelope: Envelope, uow: UnitOfWork, storage: Storage
) -> None:
    """The agent could not create the data: back to Allocated on no pool, `volume.create.failed`."""
    volume = await awaited(uow, envelope, event.volume_id, VolumeState.CREATING)
    if volume is None:
        return
    undone = replace(volume, pool_id=None, saga_request=None)
    await move_volume(uow, envelope, storage, undone, VolumeEvent.OPERATION_FAILED)
    failed = VolumeCreateFailed(volume_id=volume.volume_id, error=event.error)
    conclude(uow, envelope, volume.saga_request, failed, storage, failed=True)
    await settle_maintenance(uow, envelope, storage, volume.pool_id)


# ------------------------------------------------------------------------------------------------- delete


async def delete_volume(command: DeleteVolume, envelope: Envelope, uow: UnitOfWork, storage: Storage) -> None:
    """Destroy then expunge: the agent deletes the data; a volume never created is expunged at once."""
    try:
        volume = await repository.get_volume(uow.connection, command.volume_id)
        if volume.state is VolumeState.EXPUNGED:
            deleted = VolumeDeleted(volume_id=volume.volume_id, pool_id=volume.pool_id, entity_version=volume.version)
            conclude(uow, envelope, saga_request_of(envelope), deleted, storage)
            return
        pool = await pool_for_operation(uow, volume) if volume.pool_id is not None else None
        if volume.state is not VolumeState.DESTROY:
            volume = await move_volume(uow, envelope, storage, volume, VolumeEvent.DESTROY_REQUESTED)
        waiting = replace(volume, saga_request=saga_request_of(envelope))
        volume = await move_volume(uow, envelope, storage, waiting, VolumeEvent.EXPUNGE_REQUESTED)
    except StrataError as error:
        refuse(uow, envelope, error, VolumeDeleteFailed(volume_id=command.volume_id, error=error.info()), storage)
        return
    if pool is None:
        gone = await move_volume(
            uow, envelope, storage, replace(volume, saga_request=None), VolumeEvent.OPERATION_SUCCEEDED
        )
        deleted = VolumeDeleted(volume_id=volume.volume_id, pool_id=None, entity_version=gone.version)
        conclude(uow, envelope, volume.saga_request, deleted, storage)
        return
    route = agent_route(pool)
    on_pool = DeleteVolumeOnPool(pool_id=pool.pool_id, volume_id=volume.volume_id, host=route[0], cluster_id=route[1])
    emit(uow, envelope, on_pool, storage)


async def volume_deleted(event: VolumeDeletedOnPool, envelope: Envelope, uow: UnitOfWork, storage: Storage) -> None:
    """The agent deleted the data: Expunging -> Expunged, `volume.deleted`."""
    volume = await awaited(uow, envelope, event.volume_id, VolumeState.EXPUNGING)
    if volume is None:
        return
    gone = await move_volume(
        uow, envelope, storage, replace(volume, saga_request=None), VolumeEvent.OPERATION_SUCCEEDED
    )
    deleted = VolumeDeleted(volume_id=volume.volume_id, pool_id=event.pool_id, entity_version=gone.version)
    conclude(uow, envelope, volume.saga_request, deleted, storage)
    await settle_maintenance(uow, envelope, storage, volume.pool_id)


async def volume_delete_failed(
    event: VolumeDeleteOnPoolFailed, envelope: Envelope, uow: UnitOfWork, storage: Storage
) -> None:
    """The agent could not delete the data: back to Destroy (delete again to retry), `volume.delete.failed`."""
    volume = await awaited(uow, envelope, event.volume_id, VolumeState.EXPUNGING)
    if volume is None:
        return
    await move_volume(uow, envelope, storage, replace(volume, saga_request=None), VolumeEvent.OPERATION_FAILED)
    failed = VolumeDeleteFailed(volume_id=volume.volume_id, error=event.error)
    conclude(uow, envelope, volume.saga_request, failed, storage, failed=True)
    await settle_maintenance(uow, envelope, storage, volume.pool_id)


# ----------------------------------------------------------------------------------- operations of sagas


async def begin_operation(command: BeginVolumeOperation, envelope: Envelope, uow: UnitOfWork, storage: Storage) -> None:
    """Hold a Ready volume in Migrating, Snapshotting or RevertSnapshotting (again: already held is fine)."""
    held = operation_state(command.operation)
    try:
        await repository.check_fencing(uow.connection, volume_resource(command.volume_id), envelope.fencing_token)
        volume = await repository.get_volume(uow.connection, command.volume_id)
        version = volume.version
        if volume.state is not held:
            await pool_for_operation(uow, volume)
            version = (await move_volume(uow, envelope, storage, volume, operation_event(command.operation))).version
    except StrataError as error:
        failed = VolumeOperationFailed(volume_id=command.volume_id, operation=command.operation, error=error.info())
        refuse(uow, envelope, error, failed, storage)
        return
    if envelope.saga_id is not None:
        answer(uow, envelope, volume_moved(volume, held, version), storage)


async def end_operation(command: EndVolumeOperation, envelope: Envelope, uow: UnitOfWork, storage: Storage) -> None:
    """Bring a held volume back to Ready (again: already Ready is fine)."""
    held = operation_state(command.operation)
    try:
        await repository.check_fencing(uow.connection, volume_resource(command.volume_id), envelope.fencing_token)
        volume = await repository.get_volume(uow.connection, command.volume_id)
        version = volume.version
        if volume.state is not VolumeState.READY:
            if volume.state is not held:
                raise FailedPrecondition(
                    f"volume {volume.volume_id} is {volume.state}, not held for {command.operation}", field="operation"
                )
            outcome = VolumeEvent.OPERATION_SUCCEEDED if command.succeeded else VolumeEvent.OPERATION_FAILED
            version = (await move_volume(uow, envelope, storage, volume, outcome)).version
    except StrataError as error:
        failed = VolumeOperationFailed(volume_id=command.volume_id, operation=command.operation, error=error.info())
        refuse(uow, envelope, error, failed, storage)
        return
    if envelope.saga_id is not None:
        answer(uow, envelope, volume_moved(volume.moved(held), VolumeState.READY, version), storage)
    await settle_maintenance(uow, envelope, storage, volume.pool_id)


# ---------------------------------------------------------------------------------------------- helpers


async def pool_for_operation(uow: UnitOfWork, volume: VolumeRow) -> PoolRow:
    """The volume's pool, if it lets an operation start (not in or entering maintenance)."""
    if volume.pool_id is None:
        raise FailedPrecondition(f"volume {volume.volume_id} is on no pool yet", field="volume_id")
    pool = await repository.get_pool(uow.connection, volume.pool_id)
    if pool.state in POOL_STATES_WITHOUT_OPERATIONS:
        raise FailedPrecondition(
            f"pool {pool.name} ({pool.pool_id}) is {pool.state}: no volume operation may start on it", field="pool_id"
        )
    return pool


def check_room(pool: PoolRow, extra_bytes: int, storage: Storage) -> None:
    """ResourceExhausted if growing a volume by `extra_bytes` would take its pool over a capacity threshold."""
    # The volume is placed already: only the capacity thresholds matter, not whether the pool takes new volumes.
    view = replace(pool.view(), state=PoolState.UP)
    request = AllocationRequest(
        size_bytes=extra_bytes, zone_id=pool.zone_id, cluster_id=pool.cluster_id, host=pool.host
    )
    allocate(request, [view], storage.thresholds).best()


async def awaited(uow: UnitOfWork, envelope: Envelope, volume_id: UUID, state: VolumeState) -> VolumeRow | None:
    """The volume an agent's answer is about, if this service is waiting for it in `state`; else None (a saga's
    answer, or a repeat of one already taken into account)."""
    if envelope.saga_id is not None:
        return None
    volume = await repository.find_volume(uow.connection, volume_id)
    if volume is None or volume.state is not state:
        log.info("agent answer not awaited; ignored", volume_id=str(volume_id), type=envelope.type)
        return None
    return volume
