"""The policy scheduler: due policies claimed from the table, never from in-process timers.

Each pass takes one due policy with `FOR UPDATE SKIP LOCKED` (replicas share the work, none runs a policy twice),
moves its `next_run_at` on and sends the snapshot command in the same transaction. The snapshot's id is derived
from the policy and the run's instant, so a run repeated after a crash asks for the same snapshot. A service that
was down runs each overdue policy once (not once per missed run) and goes on from now.
"""

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

import structlog

from bus.ports import UnitOfWorkFactory
from schemas import Envelope
from schemas.snapshot import CreateSnapshot
from services.domain.policies import SnapshotPolicy
from services.runtime.polling import PollingPart
from services.snapshot.deps import SnapshotDeps
from services.snapshot.requests import PRODUCER

log = structlog.get_logger(__name__)
CONSUMER = "snapshot.scheduler"


def run_snapshot_id(policy_id: UUID, run_at: datetime) -> UUID:
    """The snapshot a policy's run takes (the same for the same run)."""
    return uuid5(NAMESPACE_URL, f"strata:snapshot-policy:{policy_id}:{run_at.isoformat()}")


class PolicyScheduler(PollingPart):
    """Runs due snapshot policies until stopped.

    Args:
        units: units of work on the service's database (PostgreSQL).
        poll: seconds between looks at the table when nothing was due.
    """

    name = CONSUMER

    def __init__(self, units: UnitOfWorkFactory, deps: SnapshotDeps, *, poll: float = 1.0) -> None:
        self.units = units
        self.deps = deps
        super().__init__(poll=poll)

    async def run_once(self) -> bool:
        return await self.run_due_policy()

    async def run_due_policy(self) -> bool:
        """Run one due policy; False if none was due."""
        now = self.deps.clock()
        async with self.units.begin(CONSUMER, None) as uow:
            assert uow is not None  # no incoming message, so never a duplicate
            row = await uow.connection.fetchrow(
                # A policy of an Expunged volume never fires (its volume takes no snapshot; it stays to be deleted).
                "SELECT policy_id, volume_id, interval_type, schedule, timezone, max_snaps, next_run_at "
                "FROM snapshot.policies p WHERE next_run_at <= $1 AND NOT EXISTS (SELECT 1 FROM snapshot.volumes v "
                "WHERE v.volume_id = p.volume_id AND v.state = 'Expunged') "
                "ORDER BY next_run_at LIMIT 1 FOR UPDATE OF p SKIP LOCKED",
                now,
            )
            if row is None:
                return False
            policy = SnapshotPolicy.parse(row["interval_type"], row["schedule"], row["timezone"], row["max_snaps"])
            run_at: datetime = row["next_run_at"]
            following = policy.next_run(max(now, run_at))
            await uow.connection.execute(
                "UPDATE snapshot.policies SET next_run_at = $2, last_run_at = $3 WHERE policy_id = $1",
                row["policy_id"],
                following,
                run_at,
            )
            snapshot_id = run_snapshot_id(row["policy_id"], run_at)
            command = CreateSnapshot(
                snapshot_id=snapshot_id,
                volume_id=row["volume_id"],
                name=f"policy-{row['interval_type'].lower()}-{run_at:%Y%m%d%H%M}",
                policy_id=row["policy_id"],
            )
            uow.emit(Envelope.wrap(command, producer=PRODUCER))
            log.info("snapshot policy ran", policy_id=str(row["policy_id"]), snapshot_id=str(snapshot_id))
        return True
