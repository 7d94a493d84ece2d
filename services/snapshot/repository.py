"""SQL of the snapshot service (schema `snapshot`), on the unit of work's asyncpg connection.

Every function takes the connection first; nothing here commits: the unit of work does, with the inbox row and
the outbox rows of the same handler.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from bus.ports import UnitOfWork
from schemas.agent import AgentRoute
from schemas.errors import FailedPrecondition, NotFound
from schemas.snapshot import SnapshotKind, SnapshotState
from schemas.storage import PoolScope, PoolState, VolumeState

# Every `connection` below is an asyncpg connection (the unit of work's); asyncpg ships no usable protocol type.
Connection = Any


# A pool in these states takes no new operation (Disabled only stops new volumes from being placed on it).
CLOSED_POOL_STATES = frozenset(
    {PoolState.PREPARE_FOR_MAINTENANCE, PoolState.MAINTENANCE, PoolState.ERROR_IN_MAINTENANCE, PoolState.REMOVED}
)


@dataclass(frozen=True, slots=True)
class PoolRow:
    """Where a pool's agent is: a host for host-scoped pools, any agent of the cluster otherwise."""

    pool_id: UUID
    plugin: str
    scope: PoolScope
    cluster_id: str | None
    host: str | None
    state: PoolState = PoolState.UP

    def check_open(self, what: str) -> None:
        """Refuse `what` (a new operation on the pool's volumes) while the pool is in or entering maintenance, or
        removed: CloudStack takes a pool in maintenance out of service for everything on it, snapshots included."""
        if self.state in CLOSED_POOL_STATES:
            raise FailedPrecondition(
                f"pool {self.pool_id} is {self.state}: {what} waits until the pool is Up again "
                "(`strata pool cancel-maintenance`)",
                field="pool_id",
            )

    def route(self) -> AgentRoute:
        """The `host` or `cluster_id` an agent command for this pool carries."""
        if self.scope is PoolScope.HOST and self.host:
            return {"host": self.host}
        if self.cluster_id:
            return {"cluster_id": self.cluster_id}
        if self.host:
            return {"host": self.host}
        raise FailedPrecondition(f"pool {self.pool_id} names no host or cluster to reach it through", field="pool_id")


@dataclass(frozen=True, slots=True)
class VolumeRow:
    """A volume as the storage service's events describe it."""

    volume_id: UUID
    pool_id: UUID
    vm_id: UUID | None
    size_bytes: int
    state: VolumeState
    base_snapshot_id: UUID | None


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    """A snapshot the service owns."""

    snapshot_id: UUID
    volume_id: UUID
    pool_id: UUID
    name: str
    kind: SnapshotKind
    parent_id: UUID | None
    state: SnapshotState
    policy_id: UUID | None
    vm_snapshot_id: UUID | None
    size_bytes: int
    physical_size_bytes: int
    error: str | None
    created_at: datetime


_SNAPSHOT_COLUMNS = (
    "snapshot_id, volume_id, pool_id, name, kind, parent_id, state, policy_id, vm_snapshot_id, size_bytes, "
    "physical_size_bytes, error, created_at"
)


def _snapshot(row: Any) -> SnapshotRow:  # an asyncpg Record of _SNAPSHOT_COLUMNS
    return SnapshotRow(
        snapshot_id=row["snapshot_id"],
        volume_id=row["volume_id"],
        pool_id=row["pool_id"],
        name=row["name"],
        kind=SnapshotKind(row["kind"]),
        parent_id=row["parent_id"],
        state=SnapshotState(row["state"]),
        policy_id=row["policy_id"],
        vm_snapshot_id=row["vm_snapshot_id"],
        size_bytes=row["size_bytes"],
        physical_size_bytes=row["physical_size_bytes"],
        error=row["error"],
        created_at=row["created_at"],
    )


# ------------------------------------------------------------------------------------------- what others own


def upsert_pool(uow: UnitOfWork, pool: PoolRow) -> None:
    """Remember a pool's plugin and where its agents are (a deferred write)."""
    uow.defer(
        "INSERT INTO snapshot.pools (pool_id, plugin, scope, cluster_id, host) VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (pool_id) DO UPDATE SET plugin = EXCLUDED.plugin, scope = EXCLUDED.scope, "
        "cluster_id = EXCLUDED.cluster_id, host = EXCLUDED.host",
        pool.pool_id,
        pool.plugin,
        pool.scope.value,
        pool.cluster_id,
        pool.host,
    )


async def get_pool(connection: Connection, pool_id: UUID) -> PoolRow:
    """The pool, or NotFound."""
    row = await connection.fetchrow("SELECT * FROM snapshot.pools WHERE pool_id = $1", pool_id)
    if row is None:
        raise NotFound(f"pool {pool_id} is unknown to the snapshot service", field="pool_id")
    return PoolRow(
        row["pool_id"], row["plugin"], PoolScope(row["scope"]), row["cluster_id"], row["host"], PoolState(row["state"])
    )


def apply_pool_state(uow: UnitOfWork, pool_id: UUID, state: PoolState, at: datetime) -> None:
    """Keep a pool's state unless a later change is already kept (a deferred write; events may come out of order)."""
    uow.defer(
        "UPDATE snapshot.pools SET state = $2, state_at = $3 "
        "WHERE pool_id = $1 AND (state_at IS NULL OR state_at <= $3)",
        pool_id,
        state.value,
        at,
    )


@dataclass(frozen=True, slots=True)
class VolumeReport:
    """What one event (or the owner's answer to a query) says of a volume, at the owner's `version` of it."""

    volume_id: UUID
    state: VolumeState
    version: int
    at: datetime
    size_bytes: int | None = None
    pool_id: UUID | None = None
    vm_id: UUID | None = None
    """Read with `pool_id`: a report that names the pool names the VM too (None: no VM)."""


# A report's state (and version) wins over the copy's if it is newer: by version, then by time (versions are 0 from
# producers older than them); its size if its version is no older than the size's; its pool and VM always (a volume
# does not change pool without a migration, whose events carry the new one). Every expression reads the old row.
_APPLY_VOLUME = """
    INSERT INTO snapshot.volumes AS v (volume_id, pool_id, vm_id, size_bytes, state, state_at, version, size_version)
    VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $4::bigint IS NULL THEN 0 ELSE $7 END)
    ON CONFLICT (volume_id) DO UPDATE SET
        state = CASE WHEN (EXCLUDED.version, EXCLUDED.state_at) >= (v.version, v.state_at)
            THEN EXCLUDED.state ELSE v.state END,
        state_at = CASE WHEN (EXCLUDED.version, EXCLUDED.state_at) >= (v.version, v.state_at)
            THEN EXCLUDED.state_at ELSE v.state_at END,
        version = GREATEST(EXCLUDED.version, v.version),
        size_bytes = CASE WHEN EXCLUDED.size_bytes IS NOT NULL AND EXCLUDED.size_version >= v.size_version
            THEN EXCLUDED.size_bytes ELSE v.size_bytes END,
        size_version = CASE WHEN EXCLUDED.size_bytes IS NOT NULL AND EXCLUDED.size_version >= v.size_version
            THEN EXCLUDED.size_version ELSE v.size_version END,
        pool_id = COALESCE(EXCLUDED.pool_id, v.pool_id),
        vm_id = CASE WHEN EXCLUDED.pool_id IS NOT NULL THEN EXCLUDED.vm_id ELSE v.vm_id END"""


def apply_volume(uow: UnitOfWork, report: VolumeReport) -> None:
    """Keep what `report` says of a volume where it is newer than what the copy holds (a deferred write): the copy
    ends the same whatever order the reports arrive in, and a report about a volume not heard of yet is kept."""
    uow.defer(
        _APPLY_VOLUME,
        report.volume_id,
        report.pool_id,
        report.vm_id,
        report.size_bytes,
        report.state.value,
        report.at,
        report.version,
    )


async def set_volume_base(connection: Connection, volume_id: UUID, snapshot_id: UUID | None) -> None:
    """The live volume is now layered on `snapshot_id`."""
    await connection.execute(
        "UPDATE snapshot.volumes SET base_snapshot_id = $2 WHERE volume_id = $1", volume_id, snapshot_id
    )


async def get_volume(connection: Connection, volume_id: UUID, *, lock: bool = False) -> VolumeRow:
    """The volume, or NotFound (also for one heard of before its `volume.created`: its pool is not known yet);
    `lock` holds its row until the transaction ends (what the caller decides on it is taken in turn)."""
    row = await connection.fetchrow(
        "SELECT * FROM snapshot.volumes WHERE volume_id = $1" + (" FOR UPDATE" if lock else ""), volume_id
    )
    if row is None or row["pool_id"] is None or row["size_bytes"] is None:
        raise NotFound(f"volume {volume_id} is unknown to the snapshot service", field="volume_id")
    return VolumeRow(
        row["volume_id"],
        row["pool_id"],
        row["vm_id"],
        row["size_bytes"],
        VolumeState(row["state"]),
        row["base_snapshot_id"],
    )


def record_power(uow: UnitOfWork, vm_id: UUID, host: str, power_state: str, at: datetime) -> None:
    """Remember what an agent last said about a VM's power state (the newest report wins; a deferred write)."""
    uow.defer(
        "INSERT INTO snapshot.vm_power (vm_id, host, power_state, seen_at) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (vm_id) DO UPDATE SET host = EXCLUDED.host, power_state = EXCLUDED.power_state, "
        "seen_at = EXCLUDED.seen_at WHERE snapshot.vm_power.seen_at <= EXCLUDED.seen_at",
        vm_id,
        host,
        power_state,
        at,
    )


async def power_of(connection: Connection, vm_id: UUID) -> str | None:
    """The VM's last reported power state, or None if no agent ever reported it."""
    value = await connection.fetchval("SELECT power_state FROM snapshot.vm_power WHERE vm_id = $1", vm_id)
    return str(value) if value is not None else None


# ------------------------------------------------------------------------------------------------- snapshots


async def insert_snapshot(connection: Connection, snapshot: SnapshotRow) -> None:
    """Record a new snapshot."""
    await connection.execute(
        f"INSERT INTO snapshot.snapshots ({_SNAPSHOT_COLUMNS}) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        snapshot.snapshot_id,
        snapshot.volume_id,
        snapshot.pool_id,
        snapshot.name,
        snapshot.kind.value,
        snapshot.parent_id,
        snapshot.state.value,
        snapshot.policy_id,
        snapshot.vm_snapshot_id,
        snapshot.size_bytes,
        snapshot.physical_size_bytes,
        snapshot.error,
        snapshot.created_at,
    )


async def find_snapshot(connection: Connection, snapshot_id: UUID, *, lock: bool = False) -> SnapshotRow | None:
    """The snapshot (locked for this transaction with `lock`), or None."""
    suffix = " FOR UPDATE" if lock else ""
    row = await connection.fetchrow(
        f"SELECT {_SNAPSHOT_COLUMNS} FROM snapshot.snapshots WHERE snapshot_id = $1{suffix}", snapshot_id
    )
    return _snapshot(row) if row is not None else None


async def get_snapshot(connection: Connection, snapshot_id: UUID, *, lock: bool = False) -> SnapshotRow:
    """The snapshot, or NotFound."""
    found = await find_snapshot(connection, snapshot_id, lock=lock)
    if found is None:
        raise NotFound(f"snapshot {snapshot_id} does not exist", field="snapshot_id")
    return found


async def update_snapshot(
    connection: Connection,
    snapshot_id: UUID,
    state: SnapshotState,
    *,
    physical_size_bytes: int | None = None,
    error: str | None = None,
) -> None:
    """Move a snapshot to `state` (with its size once known, or the error that put it there)."""
    await connection.execute(
        "UPDATE snapshot.snapshots SET state = $2, physical_size_bytes = COALESCE($3, physical_size_bytes), "
        "error = $4, updated_at = now() WHERE snapshot_id = $1",
        snapshot_id,
        state.value,
        physical_size_bytes,
        error,
    )


async def snapshots_of_volume(connection: Connection, volume_id: UUID) -> list[SnapshotRow]:
    """Every snapshot of a volume, oldest first."""
    rows = await connection.fetch(
        f"SELECT {_SNAPSHOT_COLUMNS} FROM snapshot.snapshots WHERE volume_id = $1 ORDER BY created_at, snapshot_id",
        volume_id,
    )
    return [_snapshot(row) for row in rows]


async def list_snapshots(
    connection: Connection,
    *,
    snapshot_id: UUID | None = None,
    volume_id: UUID | None = None,
    vm_snapshot_id: UUID | None = None,
    include_destroyed: bool = False,
    limit: int = 500,
) -> list[SnapshotRow]:
    """Snapshots, newest first, filtered by any of the ids."""
    rows = await connection.fetch(
        f"SELECT {_SNAPSHOT_COLUMNS} FROM snapshot.snapshots WHERE ($1::uuid IS NULL OR snapshot_id = $1) "
        "AND ($2::uuid IS NULL OR volume_id = $2) AND ($3::uuid IS NULL OR vm_snapshot_id = $3) "
        "AND ($4 OR state <> 'Destroyed') ORDER BY created_at DESC, snapshot_id DESC LIMIT $5",
        snapshot_id,
        volume_id,
        vm_snapshot_id,
        include_destroyed,
        limit,
    )
    return [_snapshot(row) for row in rows]


async def list_policies(connection: Connection, *, volume_id: UUID | None = None) -> list[Any]:
    """Policies (asyncpg records), of one volume or all, by next run."""
    return list(
        await connection.fetch(
            "SELECT policy_id, volume_id, interval_type, schedule, timezone, max_snaps, next_run_at, last_run_at "
            "FROM snapshot.policies WHERE ($1::uuid IS NULL OR volume_id = $1) ORDER BY next_run_at, policy_id",
            volume_id,
        )
    )


async def policy_snapshots(connection: Connection, policy_id: UUID) -> list[SnapshotRow]:
    """A policy's snapshots that still hold data (its retention counts them), oldest first."""
    rows = await connection.fetch(
        f"SELECT {_SNAPSHOT_COLUMNS} FROM snapshot.snapshots WHERE policy_id = $1 "
        "AND state IN ('CreatedOnPrimary', 'BackingUp', 'BackedUp') ORDER BY created_at, snapshot_id",
        policy_id,
    )
    return [_snapshot(row) for row in rows]
