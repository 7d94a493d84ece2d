"""SQL of the backup service (schema `backup`), on the unit of work's asyncpg connection; nothing here commits."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from schemas.agent import AgentRoute
from schemas.backup import BackupKind, BackupState
from schemas.errors import FailedPrecondition, NotFound
from schemas.storage import PoolScope
from services.domain.backups import PriorBackup

Connection = Any  # asyncpg ships no usable protocol type


@dataclass(frozen=True, slots=True)
class RepositoryRow:
    """A backup repository; its configuration is sealed (opened only to send it to an agent)."""

    repository_id: UUID
    name: str
    plugin: str
    sealed_config: str
    zone_id: UUID


@dataclass(frozen=True, slots=True)
class BackupRow:
    """A backup the service owns."""

    backup_id: UUID
    repository_id: UUID
    volume_id: UUID
    snapshot_id: UUID
    pool_id: UUID
    kind: BackupKind
    parent_id: UUID | None
    series: int
    state: BackupState
    size_bytes: int
    verify_bad: list[str] | None


async def insert_repository(
    connection: Connection, row: RepositoryRow, masked_config: str, created_at: datetime
) -> None:
    """Record a repository."""
    await connection.execute(
        "INSERT INTO backup.repositories (repository_id, name, plugin, sealed_config, masked_config, zone_id, "
        "created_at) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7)",
        row.repository_id,
        row.name,
        row.plugin,
        row.sealed_config,
        masked_config,
        row.zone_id,
        created_at,
    )


def _repository(row: Any) -> RepositoryRow:  # an asyncpg Record of backup.repositories
    return RepositoryRow(row["repository_id"], row["name"], row["plugin"], row["sealed_config"], row["zone_id"])


async def find_repository(connection: Connection, repository_id: UUID) -> RepositoryRow | None:
    """The repository, or None."""
    row = await connection.fetchrow("SELECT * FROM backup.repositories WHERE repository_id = $1", repository_id)
    return _repository(row) if row is not None else None


async def get_repository(connection: Connection, repository_id: UUID) -> RepositoryRow:
    """The repository, or NotFound."""
    found = await find_repository(connection, repository_id)
    if found is None:
        raise NotFound(f"backup repository {repository_id} does not exist", field="repository_id")
    return found


async def name_taken(connection: Connection, name: str) -> bool:
    """Whether another repository has this name."""
    return bool(await connection.fetchval("SELECT 1 FROM backup.repositories WHERE name = $1", name))


async def delete_repository(connection: Connection, repository_id: UUID) -> None:
    """Forget a repository (its backups must all be Removed; their rows go with it)."""
    await connection.execute("DELETE FROM backup.backups WHERE repository_id = $1", repository_id)
    await connection.execute("DELETE FROM backup.repositories WHERE repository_id = $1", repository_id)


async def live_backups_in(connection: Connection, repository_id: UUID) -> int:
    """Backups of the repository that are not Removed."""
    return int(
        await connection.fetchval(
            "SELECT count(*) FROM backup.backups WHERE repository_id = $1 AND state <> $2",
            repository_id,
            BackupState.REMOVED.value,
        )
    )


async def upsert_pool(
    connection: Connection, pool_id: UUID, *, plugin: str, scope: PoolScope, cluster_id: str | None, host: str | None
) -> None:
    """Remember where a pool's agents are."""
    await connection.execute(
        "INSERT INTO backup.pools (pool_id, plugin, scope, cluster_id, host) VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (pool_id) DO UPDATE SET plugin = EXCLUDED.plugin, scope = EXCLUDED.scope, "
        "cluster_id = EXCLUDED.cluster_id, host = EXCLUDED.host",
        pool_id,
        plugin,
        scope.value,
        cluster_id,
        host,
    )


async def pool_route(connection: Connection, pool_id: UUID) -> AgentRoute:
    """The `host` or `cluster_id` an agent command for this pool carries."""
    row = await connection.fetchrow("SELECT * FROM backup.pools WHERE pool_id = $1", pool_id)
    if row is None:
        raise NotFound(f"pool {pool_id} is unknown to the backup service", field="pool_id")
    if PoolScope(row["scope"]) is PoolScope.HOST and row["host"]:
        return {"host": row["host"]}
    if row["cluster_id"]:
        return {"cluster_id": row["cluster_id"]}
    if row["host"]:
        return {"host": row["host"]}
    raise FailedPrecondition(f"pool {pool_id} names no host or cluster to reach it through", field="pool_id")


async def upsert_volume(connection: Connection, volume_id: UUID, pool_id: UUID) -> None:
    """Remember which pool a volume is on."""
    await connection.execute(
        "INSERT INTO backup.volumes (volume_id, pool_id) VALUES ($1, $2) "
        "ON CONFLICT (volume_id) DO UPDATE SET pool_id = EXCLUDED.pool_id",
        volume_id,
        pool_id,
    )


async def volume_pool(connection: Connection, volume_id: UUID) -> UUID:
    """The pool a volume is on, or NotFound."""
    pool_id = await connection.fetchval("SELECT pool_id FROM backup.volumes WHERE volume_id = $1", volume_id)
    if pool_id is None:
        raise NotFound(f"volume {volume_id} is unknown to the backup service", field="volume_id")
    return UUID(str(pool_id))


_BACKUP_COLUMNS = (
    "backup_id, repository_id, volume_id, snapshot_id, pool_id, kind, parent_id, series, state, size_bytes, verify_bad"
)


def _backup(row: Any) -> BackupRow:  # an asyncpg Record of _BACKUP_COLUMNS
    return BackupRow(
        backup_id=row["backup_id"],
        repository_id=row["repository_id"],
        volume_id=row["volume_id"],
        snapshot_id=row["snapshot_id"],
        pool_id=row["pool_id"],
        kind=BackupKind(row["kind"]),
        parent_id=row["parent_id"],
        series=row["series"],
        state=BackupState(row["state"]),
        size_bytes=row["size_bytes"],
        verify_bad=list(row["verify_bad"]) if row["verify_bad"] is not None else None,
    )


async def find_backup(connection: Connection, backup_id: UUID, *, lock: bool = False) -> BackupRow | None:
    """The backup, or None."""
    row = await connection.fetchrow(
        f"SELECT {_BACKUP_COLUMNS} FROM backup.backups WHERE backup_id = $1{' FOR UPDATE' if lock else ''}",
        backup_id,
    )
    return _backup(row) if row is not None else None


async def get_backup(connection: Connection, backup_id: UUID, *, lock: bool = False) -> BackupRow:
    """The backup, or NotFound."""
    found = await find_backup(connection, backup_id, lock=lock)
    if found is None:
        raise NotFound(f"backup {backup_id} does not exist", field="backup_id")
    return found


async def latest_backup(connection: Connection, volume_id: UUID, repository_id: UUID) -> PriorBackup | None:
    """The newest BackedUp (or Restoring) backup of the volume in the repository: the next incremental's parent."""
    row = await connection.fetchrow(
        "SELECT backup_id, snapshot_id, series FROM backup.backups WHERE volume_id = $1 AND repository_id = $2 "
        "AND state = ANY($3::text[]) ORDER BY created_at DESC, backup_id DESC LIMIT 1",
        volume_id,
        repository_id,
        [BackupState.BACKED_UP.value, BackupState.RESTORING.value],
    )
    return PriorBackup(row["backup_id"], row["snapshot_id"], row["series"]) if row is not None else None


async def insert_backup(
    connection: Connection,
    row: BackupRow,
    *,
    schedule_id: UUID | None,
    anchor: bool,
    release_anchors: bool,
    at: datetime,
) -> None:
    """Record a backup."""
    await connection.execute(
        "INSERT INTO backup.backups (backup_id, repository_id, volume_id, snapshot_id, pool_id, schedule_id, kind, "
        "parent_id, series, state, size_bytes, created_at, anchor, release_anchors) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        row.backup_id,
        row.repository_id,
        row.volume_id,
        row.snapshot_id,
        row.pool_id,
        schedule_id,
        row.kind.value,
        row.parent_id,
        row.series,
        row.state.value,
        row.size_bytes,
        at,
        anchor,
        release_anchors,
    )


async def release_anchors(connection: Connection, backup: BackupRow) -> list[UUID]:
    """The snapshots other backups of the volume in the repository kept as anchors; they are anchors no more."""
    rows = await connection.fetch(
        "UPDATE backup.backups SET anchor = false WHERE volume_id = $1 AND repository_id = $2 AND backup_id <> $3 "
        "AND anchor RETURNING snapshot_id",
        backup.volume_id,
        backup.repository_id,
        backup.backup_id,
    )
    return [row["snapshot_id"] for row in rows]


async def set_state(connection: Connection, backup_id: UUID, state: BackupState, **columns: object) -> None:
    """Move a backup to `state`, setting the named columns too (names come from this module's callers only)."""
    names = list(columns)
    assignments = "".join(f", {name} = ${index + 3}" for index, name in enumerate(names))
    await connection.execute(
        f"UPDATE backup.backups SET state = $2{assignments} WHERE backup_id = $1",
        backup_id,
        state.value,
        *(columns[name] for name in names),
    )


async def set_verified(connection: Connection, backup_id: UUID, bad: list[str], at: datetime) -> None:
    """Record what a verify found (an empty list: sound)."""
    await connection.execute(
        "UPDATE backup.backups SET verify_bad = $2, verified_at = $3 WHERE backup_id = $1", backup_id, bad, at
    )
