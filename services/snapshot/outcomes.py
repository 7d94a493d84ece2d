"""The agent's answers: finish the snapshot's transition and answer everyone who waited for it.

A policy's new snapshot also applies the policy's retention: the oldest beyond `max_snaps` are deleted (by
commands to this service, so each deletion is a request of its own with its own outcome).
"""

from uuid import UUID

from bus.ports import UnitOfWork
from schemas import Envelope, ErrorInfo, Event
from schemas.snapshot import (
    DeleteSnapshot,
    SnapshotCreated,
    SnapshotCreatedOnPool,
    SnapshotCreateFailed,
    SnapshotCreateOnPoolFailed,
    SnapshotDeleted,
    SnapshotDeletedOnPool,
    SnapshotDeleteFailed,
    SnapshotDeleteOnPoolFailed,
    SnapshotReverted,
    SnapshotRevertFailed,
    SnapshotState,
    VolumeRevertedOnPool,
    VolumeRevertOnPoolFailed,
)
from services.domain.chains import DELTA_MAX_SETTING, retention_victims
from services.domain.snapshots import SNAPSHOT_STATES, SnapshotEvent
from services.snapshot import repository as repo
from services.snapshot.chain_handlers import ask_for_coalesce, hide_if_needed
from services.snapshot.deps import SnapshotDeps
from services.snapshot.reconcile import CREATE, DELETE, REVERT, ask_again
from services.snapshot.requests import PRODUCER, Requester, answer, refuse, take
from services.snapshot.snapshots import state_changed


async def _waiting(
    uow: UnitOfWork, kind: str, snapshot_id: UUID, volume_id: UUID, envelope: Envelope
) -> list[Requester]:
    """Who waits for this outcome; when nobody does (a lost record), the outcome is still announced."""
    found = await take(uow.connection, kind, snapshot_id, volume_id, envelope.causation_id)
    return found or [Requester(envelope.causation_id or envelope.message_id, envelope.correlation_id)]


async def _move(
    uow: UnitOfWork, requester: Requester, snapshot: repo.SnapshotRow, event: SnapshotEvent, **extra: object
) -> None:
    if not SNAPSHOT_STATES.allows(snapshot.state, event):
        return  # a repeated outcome: the snapshot is already where it leads
    new = SNAPSHOT_STATES.next_state(snapshot.snapshot_id, snapshot.state, event)
    await repo.update_snapshot(uow.connection, snapshot.snapshot_id, new, **extra)  # type: ignore[arg-type]
    state_changed(uow, requester, snapshot.snapshot_id, snapshot.state, new)


async def on_snapshot_created(
    event: SnapshotCreatedOnPool, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps
) -> None:
    """CreatedOnPrimary; answer the requesters; it becomes the live volume's base; apply the policy's retention."""
    requesters = await _waiting(uow, CREATE, event.snapshot_id, event.volume_id, envelope)
    snapshot = await repo.get_snapshot(uow.connection, event.snapshot_id, lock=True)
    if snapshot.state is SnapshotState.CREATING:
        await _move(
            uow,
            requesters[0],
            snapshot,
            SnapshotEvent.OPERATION_SUCCEEDED,
            physical_size_bytes=event.physical_size_bytes,
        )
        # The next delta counts from here: the live data is what this snapshot holds plus what changes next.
        await repo.set_volume_base(uow.connection, snapshot.volume_id, snapshot.snapshot_id)
        if snapshot.policy_id is not None:
            await _apply_retention(uow, requesters[0], snapshot.policy_id)
        await ask_for_coalesce(
            uow,
            requesters[0],
            snapshot.volume_id,
            f"the chain reached {DELTA_MAX_SETTING} {deps.delta_max} with hidden data",
            past_delta_max=deps.delta_max,
        )
    created = SnapshotCreated(
        snapshot_id=snapshot.snapshot_id,
        volume_id=snapshot.volume_id,
        kind=snapshot.kind,
        parent_id=snapshot.parent_id,
        size_bytes=snapshot.size_bytes,
        physical_size_bytes=event.physical_size_bytes,
    )
    for requester in requesters:
        answer(uow, requester, created)


async def _apply_retention(uow: UnitOfWork, requester: Requester, policy_id: UUID) -> None:
    max_snaps = await uow.connection.fetchval("SELECT max_snaps FROM snapshot.policies WHERE policy_id = $1", policy_id)
    if max_snaps is None:
        return  # the policy was deleted: its snapshots stay
    kept = await repo.policy_snapshots(uow.connection, policy_id)
    for victim in retention_victims([(s.snapshot_id, s.created_at) for s in kept], int(max_snaps)):
        uow.emit(
            Envelope.wrap(
                DeleteSnapshot(snapshot_id=victim), correlation_id=requester.correlation_id, producer=PRODUCER
            )
        )


async def on_snapshot_create_failed(
    event: SnapshotCreateOnPoolFailed, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps
) -> None:
    """Asked again if the plugin may have stopped midway; else Error, and the requesters learn why."""
    if await ask_again(uow, CREATE, event.snapshot_id, event.volume_id, event.error):
        return
    requesters = await _waiting(uow, CREATE, event.snapshot_id, event.volume_id, envelope)
    snapshot = await repo.get_snapshot(uow.connection, event.snapshot_id, lock=True)
    if snapshot.state is SnapshotState.CREATING:
        await _move(uow, requesters[0], snapshot, SnapshotEvent.OPERATION_FAILED, error=event.error.message)
    _refuse_all(
        uow,
        requesters,
        SnapshotCreateFailed(snapshot_id=event.snapshot_id, volume_id=event.volume_id, error=event.error),
        event.error,
    )


async def on_snapshot_deleted(
    event: SnapshotDeletedOnPool, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps
) -> None:
    """Destroyed (hidden if a child still needs its data, and a coalesce asked for); the requesters learn it."""
    requesters = await _waiting(uow, DELETE, event.snapshot_id, event.volume_id, envelope)
    snapshot = await repo.get_snapshot(uow.connection, event.snapshot_id, lock=True)
    pending = False
    if snapshot.state is SnapshotState.DESTROYING:
        pending = await hide_if_needed(uow, snapshot)
        await _move(uow, requesters[0], snapshot, SnapshotEvent.OPERATION_SUCCEEDED)
        await ask_for_coalesce(uow, requesters[0], snapshot.volume_id, f"snapshot {snapshot.snapshot_id} was deleted")
    deleted = SnapshotDeleted(snapshot_id=event.snapshot_id, volume_id=event.volume_id, coalesce_pending=pending)
    for requester in requesters:
        answer(uow, requester, deleted)


async def on_snapshot_delete_failed(
    event: SnapshotDeleteOnPoolFailed, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps
) -> None:
    """Asked again if the plugin may have stopped midway; else Error (a delete may be asked again), and the
    requesters learn why."""
    if await ask_again(uow, DELETE, event.snapshot_id, event.volume_id, event.error):
        return
    requesters = await _waiting(uow, DELETE, event.snapshot_id, event.volume_id, envelope)
    snapshot = await repo.get_snapshot(uow.connection, event.snapshot_id, lock=True)
    if snapshot.state is SnapshotState.DESTROYING:
        await _move(uow, requesters[0], snapshot, SnapshotEvent.OPERATION_FAILED, error=event.error.message)
    _refuse_all(uow, requesters, SnapshotDeleteFailed(snapshot_id=event.snapshot_id, error=event.error), event.error)


async def on_volume_reverted(
    event: VolumeRevertedOnPool, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps
) -> None:
    """The live volume now sits on the snapshot; the requesters learn it."""
    requesters = await _waiting(uow, REVERT, event.snapshot_id, event.volume_id, envelope)
    await repo.set_volume_base(uow.connection, event.volume_id, event.snapshot_id)
    # A hidden snapshot the live volume sat on is needed no more: the pool dropped it, the chain forgets it.
    await ask_for_coalesce(uow, requesters[0], event.volume_id, f"volume reverted to snapshot {event.snapshot_id}")
    for requester in requesters:
        answer(uow, requester, SnapshotReverted(snapshot_id=event.snapshot_id, volume_id=event.volume_id))


async def on_volume_revert_failed(
    event: VolumeRevertOnPoolFailed, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps
) -> None:
    """Asked again if the plugin may have stopped midway; else the requesters learn why (the volume holds what it
    held before)."""
    if await ask_again(uow, REVERT, event.snapshot_id, event.volume_id, event.error):
        return
    requesters = await _waiting(uow, REVERT, event.snapshot_id, event.volume_id, envelope)
    failed = SnapshotRevertFailed(snapshot_id=event.snapshot_id, volume_id=event.volume_id, error=event.error)
    _refuse_all(uow, requesters, failed, event.error)


def _refuse_all(uow: UnitOfWork, requesters: list[Requester], failed: Event, error: ErrorInfo) -> None:
    for requester in requesters:
        refuse(uow, requester, failed, error)
