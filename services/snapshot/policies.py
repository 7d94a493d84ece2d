"""Snapshot policies: create (schedule and time zone validated by services/domain), delete.

The policy's next run is a column of its row: the scheduler (`scheduler.py`) claims due rows, so the schedule
survives restarts and any replica may run it.
"""

from bus.ports import UnitOfWork
from schemas import Envelope, Event, Message
from schemas.errors import AlreadyExists, FailedPrecondition, NotFound, StrataError
from schemas.snapshot import (
    CreateSnapshotPolicy,
    DeleteSnapshotPolicy,
    SnapshotPolicyCreated,
    SnapshotPolicyCreateFailed,
    SnapshotPolicyDeleted,
    SnapshotPolicyDeleteFailed,
)
from schemas.storage import VolumeState
from services.domain.policies import SnapshotPolicy
from services.snapshot import repository as repo
from services.snapshot.deps import SnapshotDeps
from services.snapshot.requests import Requester, answer, refusing


async def create_snapshot_policy(
    command: CreateSnapshotPolicy, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps
) -> Message | None:
    """Validate the schedule, time zone and volume; record the policy with its first run."""

    def failed(error: StrataError) -> Event:
        return SnapshotPolicyCreateFailed(policy_id=command.policy_id, error=error.info())

    async def body() -> Message | None:
        policy = SnapshotPolicy.parse(command.interval_type, command.schedule, command.timezone, command.max_snaps)
        volume = await repo.get_volume(uow.connection, command.volume_id, lock=True)
        if volume.state is VolumeState.EXPUNGED:
            raise FailedPrecondition(f"volume {command.volume_id} is Expunged: it takes no policy", field="volume_id")
        next_run = policy.next_run(deps.clock())
        created = SnapshotPolicyCreated(
            policy_id=command.policy_id,
            volume_id=command.volume_id,
            interval_type=command.interval_type,
            schedule=str(policy.schedule),
            timezone=command.timezone,
            max_snaps=command.max_snaps,
            next_run_at=next_run,
        )
        existing = await uow.connection.fetchrow(
            "SELECT volume_id, interval_type, schedule, timezone, max_snaps, next_run_at FROM snapshot.policies "
            "WHERE policy_id = $1",
            command.policy_id,
        )
        if existing is not None:
            same = (existing["volume_id"], existing["interval_type"], existing["schedule"], existing["timezone"]) == (
                command.volume_id,
                command.interval_type.value,
                str(policy.schedule),
                command.timezone,
            ) and existing["max_snaps"] == command.max_snaps
            if not same:
                raise AlreadyExists(f"policy {command.policy_id} exists with other settings", field="policy_id")
            created = created.model_copy(update={"next_run_at": existing["next_run_at"]})
        else:
            # One policy per interval on a volume, as CloudStack keeps it (the volume's row is locked: two creates
            # at once are taken in turn); a second is refused naming the first, so nothing is merged silently.
            other = await uow.connection.fetchval(
                "SELECT policy_id FROM snapshot.policies WHERE volume_id = $1 AND interval_type = $2",
                command.volume_id,
                command.interval_type.value,
            )
            if other is not None:
                raise AlreadyExists(
                    f"volume {command.volume_id} has a {command.interval_type.value} policy already ({other}): "
                    "delete it first, or choose another interval",
                    field="interval_type",
                )
            await uow.connection.execute(
                "INSERT INTO snapshot.policies (policy_id, volume_id, interval_type, schedule, timezone, max_snaps, "
                "next_run_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                command.policy_id,
                command.volume_id,
                command.interval_type.value,
                str(policy.schedule),
                command.timezone,
                command.max_snaps,
                next_run,
            )
        answer(uow, Requester.of(envelope), created)
        return created

    return await refusing(uow, envelope, failed, body)


async def delete_snapshot_policy(
    command: DeleteSnapshotPolicy, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps
) -> Message | None:
    """Stop the policy; the snapshots it took stay (deleting an unknown policy is refused with NotFound)."""

    def failed(error: StrataError) -> Event:
        return SnapshotPolicyDeleteFailed(policy_id=command.policy_id, error=error.info())

    async def body() -> Message | None:
        deleted = await uow.connection.fetchval(
            "DELETE FROM snapshot.policies WHERE policy_id = $1 RETURNING policy_id", command.policy_id
        )
        if deleted is None:
            raise NotFound(f"snapshot policy {command.policy_id} does not exist", field="policy_id")
        event = SnapshotPolicyDeleted(policy_id=command.policy_id)
        answer(uow, Requester.of(envelope), event)
        return event

    return await refusing(uow, envelope, failed, body)
