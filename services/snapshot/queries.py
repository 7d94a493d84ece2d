"""Answers to `snapshot.list` and `snapshot_policy.list` over request/reply (`strata snapshot list|show`,
`strata snapshot-policy list`)."""

from bus.ports import UnitOfWork
from schemas import Envelope
from schemas.snapshot import IntervalType
from schemas.snapshot_queries import (
    ListSnapshotPolicies,
    ListSnapshots,
    SnapshotInfo,
    SnapshotPoliciesListed,
    SnapshotPolicyInfo,
    SnapshotsListed,
)
from services.snapshot import repository as repo
from services.snapshot.deps import SnapshotDeps


async def list_snapshots(
    query: ListSnapshots, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps
) -> SnapshotsListed:
    """The snapshots the query asks for, newest first."""
    rows = await repo.list_snapshots(
        uow.connection,
        snapshot_id=query.snapshot_id,
        volume_id=query.volume_id,
        vm_snapshot_id=query.vm_snapshot_id,
        include_destroyed=query.include_destroyed or query.snapshot_id is not None,
        limit=query.limit,
    )
    return SnapshotsListed(
        snapshots=tuple(
            SnapshotInfo(
                snapshot_id=row.snapshot_id,
                volume_id=row.volume_id,
                name=row.name,
                state=row.state,
                kind=row.kind,
                parent_id=row.parent_id,
                policy_id=row.policy_id,
                vm_snapshot_id=row.vm_snapshot_id,
                size_bytes=row.size_bytes,
                physical_size_bytes=row.physical_size_bytes,
                created_at=row.created_at,
                error=row.error,
            )
            for row in rows
        )
    )


async def list_snapshot_policies(
    query: ListSnapshotPolicies, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps
) -> SnapshotPoliciesListed:
    """The policies, of one volume or all, by next run."""
    rows = await repo.list_policies(uow.connection, volume_id=query.volume_id)
    return SnapshotPoliciesListed(
        policies=tuple(
            SnapshotPolicyInfo(
                policy_id=row["policy_id"],
                volume_id=row["volume_id"],
                interval_type=IntervalType(row["interval_type"]),
                schedule=row["schedule"],
                timezone=row["timezone"],
                max_snaps=row["max_snaps"],
                next_run_at=row["next_run_at"],
                last_run_at=row["last_run_at"],
            )
            for row in rows
        )
    )
