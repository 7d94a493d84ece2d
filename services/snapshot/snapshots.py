"""Volume snapshots: create, delete, revert. Load, decide (services/domain), record, hand the work to the agent.

The agent's answer (see `outcomes.py`) finishes the job and answers whoever asked. A refused command changes
nothing: it is answered with its `...Failed` event (and a step failure when a saga sent it).
"""

from uuid import UUID

from bus.ports import UnitOfWork
from schemas import Envelope, Event, Message
from schemas.errors import AlreadyExists, FailedPrecondition, StrataError
from schemas.snapshot import (
    CreateSnapshot,
    CreateSnapshotOnPool,
    DeleteSnapshot,
    DeleteSnapshotOnPool,
    RevertSnapshot,
    RevertVolumeOnPool,
    SnapshotCreated,
    SnapshotCreateFailed,
    SnapshotDeleted,
    SnapshotDeleteFailed,
    SnapshotRevertFailed,
    SnapshotState,
    SnapshotStateChanged,
)
from schemas.storage import VolumeState
from schemas.vm import PowerState
from services.domain.chains import plan_next_snapshot
from services.domain.snapshots import SNAPSHOT_STATES, USABLE_SNAPSHOT_STATES, SnapshotEvent
from services.snapshot import repository as repo
from services.snapshot.chain_store import load_chain
from services.snapshot.deps import SnapshotDeps
from services.snapshot.reconcile import CREATE, DELETE, REVERT
from services.snapshot.requests import Requester, answer, refusing, remember, to_agent


def state_changed(
    uow: UnitOfWork, requester: Requester, snapshot_id: UUID, old: SnapshotState, new: SnapshotState
) -> None:
    """Publish a snapshot's move (CloudStack's ResourceStateEvent), outside any saga's step."""
    event = SnapshotStateChanged(snapshot_id=snapshot_id, old_state=old, new_state=new)
    uow.emit(requester.envelope(event).model_copy(update={"saga_id": None, "step": None}))


async def create_snapshot(
    command: CreateSnapshot, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps
) -> Message | None:
    """Take a snapshot of a Ready volume, full or delta as the chain rules say."""

    def failed(error: StrataError) -> Event:
        return SnapshotCreateFailed(snapshot_id=command.snapshot_id, volume_id=command.volume_id, error=error.info())

    return await refusing(uow, envelope, failed, lambda: _create(command, envelope, uow, deps))


async def _create(command: CreateSnapshot, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps) -> Message | None:
    connection = uow.connection
    requester = Requester.of(envelope)
    existing = await repo.find_snapshot(connection, command.snapshot_id, lock=True)
    if existing is not None:
        if existing.volume_id != command.volume_id:
            raise AlreadyExists(f"snapshot {command.snapshot_id} exists for another volume", field="snapshot_id")
        return await _create_again(existing, requester, uow)
    volume = await repo.get_volume(connection, command.volume_id)
    if volume.state is not VolumeState.READY:
        raise FailedPrecondition(
            f"volume {volume.volume_id} is {volume.state}: a snapshot needs it Ready", field="volume_id"
        )
    pool = await repo.get_pool(connection, volume.pool_id)
    pool.check_open("a new snapshot")
    # Hidden snapshots count: the live data may sit on one (its newest snapshot deleted), and a delta builds on it.
    chain = (await load_chain(connection, volume.volume_id)).chain
    plan = plan_next_snapshot(chain, delta_max=deps.delta_max, supports_delta=deps.supports_delta(pool.plugin))
    parent_id = plan.parent_id
    state = SNAPSHOT_STATES.next_state(command.snapshot_id, SnapshotState.ALLOCATED, SnapshotEvent.CREATE_REQUESTED)
    await repo.insert_snapshot(
        connection,
        repo.SnapshotRow(
            snapshot_id=command.snapshot_id,
            volume_id=volume.volume_id,
            pool_id=volume.pool_id,
            name=command.name,
            kind=plan.kind,
            parent_id=parent_id,
            state=state,
            policy_id=command.policy_id,
            vm_snapshot_id=command.vm_snapshot_id,
            size_bytes=volume.size_bytes,
            physical_size_bytes=0,
            error=None,
            created_at=deps.clock(),
        ),
    )
    state_changed(uow, requester, command.snapshot_id, SnapshotState.ALLOCATED, state)
    sent = to_agent(
        uow,
        requester,
        CreateSnapshotOnPool(
            pool_id=pool.pool_id,
            volume_id=volume.volume_id,
            snapshot_id=command.snapshot_id,
            kind=plan.kind,
            parent_id=parent_id,
            **pool.route(),
        ),
    )
    await remember(
        connection, sent, requester, kind=CREATE, snapshot_id=command.snapshot_id, volume_id=volume.volume_id
    )
    return None


async def _create_again(existing: repo.SnapshotRow, requester: Requester, uow: UnitOfWork) -> Message | None:
    """The same snapshot asked for again (a saga's retry): answer now if it is done, or wait with the first."""
    if existing.state in USABLE_SNAPSHOT_STATES:
        created = SnapshotCreated(
            snapshot_id=existing.snapshot_id,
            volume_id=existing.volume_id,
            kind=existing.kind,
            parent_id=existing.parent_id,
            size_bytes=existing.size_bytes,
            physical_size_bytes=existing.physical_size_bytes,
        )
        answer(uow, requester, created)
        return created
    if existing.state is SnapshotState.CREATING:
        await uow.connection.execute(
            "INSERT INTO snapshot.operations (agent_message_id, kind, snapshot_id, volume_id, request) "
            "VALUES (gen_random_uuid(), $1, $2, $3, $4::jsonb)",
            CREATE,
            existing.snapshot_id,
            existing.volume_id,
            requester.to_json(),
        )
        return None
    raise FailedPrecondition(
        f"snapshot {existing.snapshot_id} is {existing.state}: it cannot be created again", field="snapshot_id"
    )


async def delete_snapshot(
    command: DeleteSnapshot, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps
) -> Message | None:
    """Delete a snapshot's data (the plugin keeps what newer layers still need) and mark it Destroyed."""

    def failed(error: StrataError) -> Event:
        return SnapshotDeleteFailed(snapshot_id=command.snapshot_id, error=error.info())

    return await refusing(uow, envelope, failed, lambda: _delete(command, envelope, uow))


async def _delete(command: DeleteSnapshot, envelope: Envelope, uow: UnitOfWork) -> Message | None:
    connection = uow.connection
    requester = Requester.of(envelope)
    snapshot = await repo.get_snapshot(connection, command.snapshot_id, lock=True)
    if snapshot.state is SnapshotState.DESTROYED:
        deleted = SnapshotDeleted(snapshot_id=snapshot.snapshot_id, volume_id=snapshot.volume_id)
        answer(uow, requester, deleted)
        return deleted
    pool = await repo.get_pool(connection, snapshot.pool_id)
    pool.check_open("deleting a snapshot")
    if snapshot.state is not SnapshotState.DESTROYING:
        new = SNAPSHOT_STATES.next_state(snapshot.snapshot_id, snapshot.state, SnapshotEvent.DESTROY_REQUESTED)
        await repo.update_snapshot(connection, snapshot.snapshot_id, new)
        state_changed(uow, requester, snapshot.snapshot_id, snapshot.state, new)
    sent = to_agent(
        uow,
        requester,
        DeleteSnapshotOnPool(
            pool_id=pool.pool_id, volume_id=snapshot.volume_id, snapshot_id=snapshot.snapshot_id, **pool.route()
        ),
    )
    await remember(
        connection, sent, requester, kind=DELETE, snapshot_id=snapshot.snapshot_id, volume_id=snapshot.volume_id
    )
    return None


async def revert_snapshot(
    command: RevertSnapshot, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps
) -> Message | None:
    """Revert a volume to one of its snapshots: the volume Ready and its VM stopped.

    A saga that holds the volume (RevertSnapshotting, its fencing token) and has stopped the VM reverts it too.
    """
    volume_of: dict[str, UUID] = {}

    def failed(error: StrataError) -> Event:
        return SnapshotRevertFailed(snapshot_id=command.snapshot_id, volume_id=volume_of.get("id"), error=error.info())

    async def body() -> Message | None:
        return await _revert(command, envelope, uow, volume_of)

    return await refusing(uow, envelope, failed, body)


async def _revert(
    command: RevertSnapshot, envelope: Envelope, uow: UnitOfWork, volume_of: dict[str, UUID]
) -> Message | None:
    connection = uow.connection
    requester = Requester.of(envelope)
    snapshot = await repo.get_snapshot(connection, command.snapshot_id)
    volume_of["id"] = snapshot.volume_id
    if snapshot.state not in USABLE_SNAPSHOT_STATES:
        raise FailedPrecondition(
            f"snapshot {snapshot.snapshot_id} is {snapshot.state}: only a snapshot whose data is whole "
            "(CreatedOnPrimary, BackingUp, BackedUp) can be reverted to",
            field="snapshot_id",
        )
    volume = await repo.get_volume(connection, snapshot.volume_id)
    held_by_saga = requester.from_saga and requester.fencing_token is not None
    allowed = {VolumeState.READY, VolumeState.REVERT_SNAPSHOTTING} if held_by_saga else {VolumeState.READY}
    if volume.state not in allowed:
        raise FailedPrecondition(
            f"volume {volume.volume_id} is {volume.state}: a revert needs it Ready", field="snapshot_id"
        )
    if volume.vm_id is not None and not held_by_saga:
        power = await repo.power_of(connection, volume.vm_id)
        if power != PowerState.STOPPED.value:
            seen = "running" if power == PowerState.RUNNING.value else f"in power state {power or 'unknown'}"
            raise FailedPrecondition(
                f"volume {volume.volume_id} belongs to VM {volume.vm_id}, which is {seen}: stop the VM first, "
                "or revert the whole VM to a VM snapshot (`strata vm revert`), which stops and restarts it",
                field="snapshot_id",
            )
    pool = await repo.get_pool(connection, volume.pool_id)
    pool.check_open("a revert")
    sent = to_agent(
        uow,
        requester,
        RevertVolumeOnPool(
            pool_id=pool.pool_id, volume_id=volume.volume_id, snapshot_id=snapshot.snapshot_id, **pool.route()
        ),
    )
    await remember(
        connection, sent, requester, kind=REVERT, snapshot_id=snapshot.snapshot_id, volume_id=volume.volume_id
    )
    return None
