"""What keeps a volume from being deleted: its snapshots (not Destroyed) and its snapshot policies, as the snapshot
service lists them. `strata volume delete` refuses a volume that has any, naming them, unless `--cascade` asks to
delete them first (each through the snapshot service's own command, waited for)."""

from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

from schemas.errors import FailedPrecondition

if TYPE_CHECKING:  # messages and the bus are imported when a command runs, so that `strata --help` stays fast
    from schemas.snapshot_queries import SnapshotInfo, SnapshotPolicyInfo
    from services.cli.sending import Client


@dataclass(frozen=True)
class Dependents:
    """A volume's snapshots and policies."""

    snapshots: "tuple[SnapshotInfo, ...]"
    policies: "tuple[SnapshotPolicyInfo, ...]"

    def refusal(self, volume: str) -> FailedPrecondition | None:
        """The error that names them, or None when there are none."""
        parts = []
        if self.snapshots:
            parts.append(f"{len(self.snapshots)} snapshot(s) ({', '.join(s.name for s in self.snapshots)})")
        if self.policies:
            schedules = ", ".join(f"{p.interval_type.value} {p.schedule}" for p in self.policies)
            parts.append(f"{len(self.policies)} snapshot policy(ies) ({schedules})")
        if not parts:
            return None
        return FailedPrecondition(
            f"volume {volume} has {' and '.join(parts)}: delete them first, or give --cascade to delete them with it",
            field="volume",
        )


async def dependents_of(client: "Client", volume_id: UUID, *, timeout: float) -> Dependents:
    """The volume's snapshots that are not Destroyed and its snapshot policies."""
    from schemas.snapshot_queries import (
        ListSnapshotPolicies,
        ListSnapshots,
        SnapshotPoliciesListed,
        SnapshotsListed,
    )

    snapshots = await client.ask(ListSnapshots(volume_id=volume_id), SnapshotsListed, timeout=timeout)
    policies = await client.ask(ListSnapshotPolicies(volume_id=volume_id), SnapshotPoliciesListed, timeout=timeout)
    return Dependents(snapshots.snapshots, policies.policies)


async def delete_dependents(client: "Client", dependents: Dependents, *, timeout: float) -> None:
    """Delete the policies first (so that none fires meanwhile), then the snapshots, newest first."""
    from schemas.snapshot import (
        DeleteSnapshot,
        DeleteSnapshotPolicy,
        SnapshotDeleted,
        SnapshotDeleteFailed,
        SnapshotPolicyDeleted,
        SnapshotPolicyDeleteFailed,
    )

    for policy in dependents.policies:
        await client.send(
            DeleteSnapshotPolicy(policy_id=policy.policy_id),
            (SnapshotPolicyDeleted,),
            (SnapshotPolicyDeleteFailed,),
            timeout=timeout,
        )
    for snapshot in dependents.snapshots:  # the service lists them newest first: children before their parents
        await client.send(
            DeleteSnapshot(snapshot_id=snapshot.snapshot_id),
            (SnapshotDeleted,),
            (SnapshotDeleteFailed,),
            timeout=timeout,
        )


async def wait_unlocked(volume_id: UUID, *, timeout: float) -> None:
    """Wait until no saga holds the volume (a snapshot's deletion may start one that merges its chain), reading the
    saga locks from STRATA_DATABASE_URL; FailedPrecondition names the saga still holding it after `timeout`."""
    import asyncio
    import time

    from bus.postgres import create_pool
    from bus.postgres.errors import translated_errors
    from services.runtime.settings import RuntimeSettings

    deadline = time.monotonic() + timeout
    with translated_errors():
        pool = await create_pool(RuntimeSettings().database_url.get_secret_value(), min_size=1, max_size=1)
        try:
            while True:
                holder = await pool.fetchval(
                    "SELECT holder FROM sagas.locks WHERE resource = $1 AND holder IS NOT NULL", f"volume:{volume_id}"
                )
                if holder is None:
                    return
                if time.monotonic() > deadline:
                    raise FailedPrecondition(
                        f"saga {holder} still holds the volume after {timeout:g}s (see `strata saga show {holder}`)",
                        field="volume",
                    )
                await asyncio.sleep(0.2)  # a look at the saga's lock again, until the deadline
        finally:
            await pool.close()
