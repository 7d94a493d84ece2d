"""The image service's record of templates into primary (schema `image`): one base copy per (template, pool) and
the volumes made on it (its references)."""

from dataclasses import dataclass
from uuid import UUID

from schemas.image import DownloadState
from services.image.repository import SCHEMA, Connection, CopyRow, StoreRow, copy_from_row, store_from_row


@dataclass(frozen=True, slots=True)
class BaseCopyRow:
    """A template's base copy on a pool and the agent route of the pool."""

    image_id: UUID
    pool_id: UUID
    base_volume_id: UUID
    host: str | None
    cluster_id: str | None


async def downloaded_copy(connection: Connection, image_id: UUID, zone_id: UUID) -> tuple[CopyRow, StoreRow] | None:
    """A DOWNLOADED copy of the image in a store of the zone, if there is one."""
    row = await connection.fetchrow(
        f"SELECT c.*, s.name, s.zone_id, s.plugin, s.sealed_config FROM {SCHEMA}.copies c "
        f"JOIN {SCHEMA}.stores s USING (store_id) WHERE c.image_id = $1 AND s.zone_id = $2 AND NOT s.removed "
        "AND c.state = $3 ORDER BY s.name LIMIT 1",
        image_id,
        zone_id,
        DownloadState.DOWNLOADED.value,
    )
    return None if row is None else (copy_from_row(row), store_from_row(row))


async def use_base_copy(connection: Connection, base: BaseCopyRow, volume_id: UUID) -> None:
    """Record the base copy (if new) and the volume made on it (its reference)."""
    await connection.execute(
        f"INSERT INTO {SCHEMA}.base_copies (image_id, pool_id, base_volume_id, host, cluster_id) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        base.image_id,
        base.pool_id,
        base.base_volume_id,
        base.host,
        base.cluster_id,
    )
    await connection.execute(
        f"INSERT INTO {SCHEMA}.base_users (volume_id, image_id, pool_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        volume_id,
        base.image_id,
        base.pool_id,
    )


async def base_user_created(connection: Connection, volume_id: UUID, base_volume_id: UUID) -> None:
    """The volume exists on its base copy, which is therefore on the pool."""
    await connection.execute(f"UPDATE {SCHEMA}.base_users SET created = true WHERE volume_id = $1", volume_id)
    await connection.execute(f"UPDATE {SCHEMA}.base_copies SET ready = true WHERE base_volume_id = $1", base_volume_id)


async def drop_base_user(connection: Connection, volume_id: UUID) -> None:
    """The volume is gone (or was never made): it no longer holds its base copy."""
    await connection.execute(f"DELETE FROM {SCHEMA}.base_users WHERE volume_id = $1", volume_id)


async def base_users(connection: Connection, image_id: UUID) -> list[UUID]:
    """The volumes made on the image's base copies (on any pool)."""
    rows = await connection.fetch(
        f"SELECT volume_id FROM {SCHEMA}.base_users WHERE image_id = $1 ORDER BY volume_id", image_id
    )
    return [row["volume_id"] for row in rows]


async def take_base_copies(connection: Connection, image_id: UUID) -> list[BaseCopyRow]:
    """Forget the image's base copies (it is being deleted and no volume uses them); return them."""
    rows = await connection.fetch(f"DELETE FROM {SCHEMA}.base_copies WHERE image_id = $1 RETURNING *", image_id)
    return [
        BaseCopyRow(row["image_id"], row["pool_id"], row["base_volume_id"], row["host"], row["cluster_id"])
        for row in rows
    ]
