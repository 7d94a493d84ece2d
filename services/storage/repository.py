"""The storage service's tables (schema `storage`), on the unit of work's connection."""

import json
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID

from sagas import participant
from schemas.errors import NotFound
from schemas.storage import PoolScope, PoolState, PoolThresholds, VolumeState
from schemas.storage_queries import PoolInfo, VolumeInfo
from services.domain.allocator import CapacityThresholds, PoolView
from services.domain.volumes import VOLUME_STATES_ON_POOL

SCHEMA = "storage"
Connection = Any  # an asyncpg connection (the unit of work's); typed loosely like `UnitOfWork.connection`

# Volume states in which an operation is under way on the pool: maintenance waits until none is left.
IN_FLIGHT_STATES = frozenset(
    {
        VolumeState.CREATING,
        VolumeState.RESIZING,
        VolumeState.SNAPSHOTTING,
        VolumeState.MIGRATING,
        VolumeState.REVERT_SNAPSHOTTING,
        VolumeState.EXPUNGING,
    }
)
_ON_POOL = [state.value for state in VOLUME_STATES_ON_POOL]


@dataclass(frozen=True, slots=True)
class PoolRow:
    """A pool as the storage service keeps it."""

    pool_id: UUID
    name: str
    plugin: str
    state: PoolState
    scope: PoolScope
    zone_id: UUID
    cluster_id: str | None
    host: str | None
    hypervisors: frozenset[str]
    tags: frozenset[str]
    thin_provisioned: bool
    capacity_bytes: int = 0
    used_bytes: int = 0
    allocated_bytes: int = 0
    volumes: int = 0
    masked_config: dict[str, Any] = field(default_factory=dict)  # its configuration, secrets masked (for a look)
    thresholds: PoolThresholds | None = None  # its own; None: the deployment's
    pending_update: dict[str, Any] | None = None  # an update waiting for an agent to check configuration changes

    def view(self) -> PoolView:
        """What the allocator needs to know of it."""
        return PoolView(
            pool_id=self.pool_id,
            name=self.name,
            state=self.state,
            scope=self.scope,
            zone_id=self.zone_id,
            capacity_bytes=self.capacity_bytes,
            used_bytes=self.used_bytes,
            allocated_bytes=self.allocated_bytes,
            thin_provisioned=self.thin_provisioned,
            cluster_id=self.cluster_id,
            host=self.host,
            hypervisors=self.hypervisors,
            tags=self.tags,
            thresholds=CapacityThresholds(**self.thresholds.model_dump()) if self.thresholds else None,
        )

    def info(self) -> PoolInfo:
        """The pool as the list query shows it."""
        return PoolInfo(
            pool_id=self.pool_id,
            name=self.name,
            plugin=self.plugin,
            state=self.state,
            scope=self.scope,
            zone_id=self.zone_id,
            cluster_id=self.cluster_id,
            host=self.host,
            hypervisors=self.hypervisors,
            tags=self.tags,
            capacity_bytes=self.capacity_bytes,
            used_bytes=self.used_bytes,
            allocated_bytes=self.allocated_bytes,
            volumes=self.volumes,
            config=self.masked_config,
            thresholds=self.thresholds,
        )


@dataclass(frozen=True, slots=True)
class VolumeRow:
    """A volume as the storage service keeps it."""

    volume_id: UUID
    name: str
    state: VolumeState
    size_bytes: int
    zone_id: UUID
    pool_id: UUID | None = None
    vm_id: UUID | None = None
    locator: str | None = None
    requested_size_bytes: int | None = None
    saga_request: str | None = None
    """JSON of the saga step waiting for the operation under way (`context.SagaRequest`), if any."""
    version: int = 0
    """Incremented by every save: the version the volume's events carry (`entity_version`)."""

    def info(self) -> VolumeInfo:
        """The volume as the list query shows it."""
        return VolumeInfo(
            volume_id=self.volume_id,
            name=self.name,
            state=self.state,
            size_bytes=self.size_bytes,
            zone_id=self.zone_id,
            pool_id=self.pool_id,
            vm_id=self.vm_id,
            locator=self.locator,
            entity_version=self.version,
        )

    def moved(self, state: VolumeState) -> "VolumeRow":
        """The same volume in another state."""
        return replace(self, state=state)


_POOL_SELECT = f"""
    SELECT p.*, COALESCE(v.allocated, 0) AS allocated_bytes, COALESCE(v.volumes, 0) AS volumes
    FROM {SCHEMA}.pools p
    LEFT JOIN (
        SELECT pool_id, sum(size_bytes) AS allocated, count(*) AS volumes FROM {SCHEMA}.volumes
        WHERE state = ANY($1::text[]) GROUP BY pool_id
    ) v ON v.pool_id = p.pool_id"""


def _pool(row: Any) -> PoolRow:  # an asyncpg Record
    return PoolRow(
        pool_id=row["pool_id"],
        name=row["name"],
        plugin=row["plugin"],
        state=PoolState(row["state"]),
        scope=PoolScope(row["scope"]),
        zone_id=row["zone_id"],
        cluster_id=row["cluster_id"],
        host=row["host"],
        hypervisors=frozenset(row["hypervisors"]),
        tags=frozenset(row["tags"]),
        thin_provisioned=row["thin_provisioned"],
        capacity_bytes=row["capacity_bytes"],
        used_bytes=row["used_bytes"],
        allocated_bytes=int(row["allocated_bytes"]),
        volumes=int(row["volumes"]),
        masked_config=json.loads(row["masked_config"]),
        thresholds=PoolThresholds.model_validate_json(row["thresholds"]) if row["thresholds"] else None,
        pending_update=json.loads(row["pending_update"]) if row["pending_update"] else None,
    )


async def find_pool(connection: Connection, pool_id: UUID, *, lock: bool = False) -> PoolRow | None:
    """The pool, or None; `lock` holds its row until the transaction ends (one pool change at a time)."""
    if lock:
        await connection.execute(f"SELECT 1 FROM {SCHEMA}.pools WHERE pool_id = $1 FOR UPDATE", pool_id)
    row = await connection.fetchrow(f"{_POOL_SELECT} WHERE p.pool_id = $2", _ON_POOL, pool_id)
    return _pool(row) if row is not None else None


async def get_pool(connection: Connection, pool_id: UUID, *, lock: bool = False) -> PoolRow:
    """The pool; `NotFound` naming it otherwise."""
    pool = await find_pool(connection, pool_id, lock=lock)
    if pool is None:
        raise NotFound(f"pool {pool_id} does not exist", field="pool_id")
    return pool


async def list_pools(
    connection: Connection, *, pool_id: UUID | None = None, include_removed: bool = False, zone_id: UUID | None = None
) -> list[PoolRow]:
    """Pools by name, Removed ones only when asked."""
    rows = await connection.fetch(
        f"{_POOL_SELECT} WHERE ($2::uuid IS NULL OR p.pool_id = $2) AND ($3 OR p.state <> 'Removed') "
        "AND ($4::uuid IS NULL OR p.zone_id = $4) ORDER BY p.name, p.pool_id",
        _ON_POOL,
        pool_id,
        include_removed,
        zone_id,
    )
    return [_pool(row) for row in rows]


async def name_taken(connection: Connection, zone_id: UUID, name: str) -> bool:
    """Whether a pool that is not Removed has this name in the zone."""
    return bool(
        await connection.fetchval(
            f"SELECT EXISTS (SELECT 1 FROM {SCHEMA}.pools WHERE zone_id = $1 AND name = $2 AND state <> 'Removed')",
            zone_id,
            name,
        )
    )


async def insert_pool(connection: Connection, pool: PoolRow) -> None:
    """Record a new pool."""
    await connection.execute(
        f"INSERT INTO {SCHEMA}.pools (pool_id, name, plugin, state, scope, zone_id, cluster_id, host, hypervisors, "
        "tags, thin_provisioned, masked_config, thresholds) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13::jsonb)",
        pool.pool_id,
        pool.name,
        pool.plugin,
        pool.state.value,
        pool.scope.value,
        pool.zone_id,
        pool.cluster_id,
        pool.host,
        sorted(pool.hypervisors),
        sorted(pool.tags),
        pool.thin_provisioned,
        json.dumps(pool.masked_config),
        pool.thresholds.model_dump_json() if pool.thresholds else None,
    )


async def set_pool_settings(connection: Connection, pool: PoolRow) -> None:
    """Keep a pool's tags, own thresholds and masked configuration as `pool` has them, and clear its pending update."""
    await connection.execute(
        f"UPDATE {SCHEMA}.pools SET tags = $2, thresholds = $3::jsonb, masked_config = $4::jsonb, "
        "pending_update = NULL, updated_at = now() WHERE pool_id = $1",
        pool.pool_id,
        sorted(pool.tags),
        pool.thresholds.model_dump_json() if pool.thresholds else None,
        json.dumps(pool.masked_config),
    )


async def set_pending_update(connection: Connection, pool_id: UUID, pending: dict[str, Any] | None) -> None:
    """Remember (or forget) the update waiting for an agent's check of its configuration changes."""
    await connection.execute(
        f"UPDATE {SCHEMA}.pools SET pending_update = $2::jsonb WHERE pool_id = $1",
        pool_id,
        json.dumps(pending) if pending is not None else None,
    )


async def set_pool_state(connection: Connection, pool_id: UUID, state: PoolState) -> None:
    """Move a pool to `state`."""
    await connection.execute(
        f"UPDATE {SCHEMA}.pools SET state = $2, updated_at = now() WHERE pool_id = $1", pool_id, state.value
    )


async def set_pool_stats(connection: Connection, pool_id: UUID, capacity_bytes: int, used_bytes: int) -> None:
    """Record the capacity and use a plugin reported."""
    await connection.execute(
        f"UPDATE {SCHEMA}.pools SET capacity_bytes = $2, used_bytes = $3, stats_at = now() WHERE pool_id = $1",
        pool_id,
        capacity_bytes,
        used_bytes,
    )


async def count_volumes(connection: Connection, pool_id: UUID, states: frozenset[VolumeState]) -> int:
    """Volumes of the pool in any of `states`."""
    return int(
        await connection.fetchval(
            f"SELECT count(*) FROM {SCHEMA}.volumes WHERE pool_id = $1 AND state = ANY($2::text[])",
            pool_id,
            [state.value for state in states],
        )
    )


def _volume(row: Any) -> VolumeRow:  # an asyncpg Record
    return VolumeRow(
        volume_id=row["volume_id"],
        name=row["name"],
        state=VolumeState(row["state"]),
        size_bytes=row["size_bytes"],
        zone_id=row["zone_id"],
        pool_id=row["pool_id"],
        vm_id=row["vm_id"],
        locator=row["locator"],
        requested_size_bytes=row["requested_size_bytes"],
        saga_request=row["saga_request"],
        version=row["version"],
    )


async def find_volume(connection: Connection, volume_id: UUID) -> VolumeRow | None:
    """The volume with its row locked until the transaction ends, or None."""
    row = await connection.fetchrow(f"SELECT * FROM {SCHEMA}.volumes WHERE volume_id = $1 FOR UPDATE", volume_id)
    return _volume(row) if row is not None else None


async def get_volume(connection: Connection, volume_id: UUID) -> VolumeRow:
    """The volume (row locked); `NotFound` naming it otherwise."""
    volume = await find_volume(connection, volume_id)
    if volume is None:
        raise NotFound(f"volume {volume_id} does not exist", field="volume_id")
    return volume


async def list_volumes(
    connection: Connection,
    *,
    volume_id: UUID | None = None,
    pool_id: UUID | None = None,
    vm_id: UUID | None = None,
    include_expunged: bool = False,
) -> list[VolumeRow]:
    """Volumes by name, Expunged ones only when asked."""
    rows = await connection.fetch(
        f"SELECT * FROM {SCHEMA}.volumes WHERE ($1::uuid IS NULL OR volume_id = $1) "
        "AND ($2::uuid IS NULL OR pool_id = $2) AND ($3::uuid IS NULL OR vm_id = $3) "
        "AND ($4 OR state <> 'Expunged') ORDER BY name, volume_id",
        volume_id,
        pool_id,
        vm_id,
        include_expunged,
    )
    return [_volume(row) for row in rows]


async def save_volume(connection: Connection, volume: VolumeRow) -> VolumeRow:
    """Insert the volume or update every field of it; return it with its new version (one more with every save)."""
    version = await connection.fetchval(
        f"INSERT INTO {SCHEMA}.volumes AS v (volume_id, name, state, size_bytes, zone_id, pool_id, vm_id, locator, "
        "requested_size_bytes, saga_request, version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, 1) "
        "ON CONFLICT (volume_id) DO UPDATE SET state = EXCLUDED.state, size_bytes = EXCLUDED.size_bytes, "
        "pool_id = EXCLUDED.pool_id, locator = EXCLUDED.locator, requested_size_bytes = EXCLUDED.requested_size_bytes, "
        "saga_request = EXCLUDED.saga_request, updated_at = now(), version = v.version + 1 RETURNING version",
        volume.volume_id,
        volume.name,
        volume.state.value,
        volume.size_bytes,
        volume.zone_id,
        volume.pool_id,
        volume.vm_id,
        volume.locator,
        volume.requested_size_bytes,
        volume.saga_request,
    )
    return replace(volume, version=version)


async def check_fencing(connection: Connection, resource: str, token: int | None) -> None:
    """Refuse (Aborted) a command carrying a token older than one seen for `resource`, or none on a resource a saga
    holds (see `sagas.participant.check_fencing`).
    """
    await participant.check_fencing(connection, [resource], token, table=f"{SCHEMA}.fencing")
