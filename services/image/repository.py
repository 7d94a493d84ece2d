"""The image service's tables (schema `image`), on a unit of work's connection: stores, images, copies per store.

A store's configuration is kept masked (`config`, for an operator's look) and sealed with the deployment key
(`sealed_config`, what the service opens the store with); it is never logged or put in an event.
"""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from schemas.image import DownloadState, ImageFormat, ImageKind

Connection = Any  # asyncpg.Connection: the unit of work's
SCHEMA = "image"
WORK_STATES = (DownloadState.NOT_DOWNLOADED.value, DownloadState.DOWNLOAD_IN_PROGRESS.value)


@dataclass(frozen=True, slots=True)
class StoreRow:
    """An image store and how to open it."""

    store_id: UUID
    name: str
    zone_id: UUID
    plugin: str
    sealed_config: str


@dataclass(frozen=True, slots=True)
class ImageRow:
    """A template or ISO."""

    image_id: UUID
    name: str
    kind: ImageKind
    format: ImageFormat
    zone_id: UUID
    url: str
    checksum: str | None
    size_bytes: int | None
    virtual_size_bytes: int | None
    deleting: bool
    request: dict[str, Any]  # Any: JSON, the lineage of the command being worked on (see services.image.lineage)
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CopyRow:
    """An image's copy in one store."""

    image_id: UUID
    store_id: UUID
    state: DownloadState
    done_bytes: int
    total_bytes: int | None
    attempts: int
    error: str | None
    checksum: str | None
    source_store_id: UUID | None = None
    """Set for a copy from another zone's store (fed from there, not from the image's URL)."""
    request: dict[str, Any] | None = None  # Any: JSON; the lineage of the copy command, if one made this copy


def store_from_row(row: Any) -> StoreRow:  # Any: asyncpg.Record
    return StoreRow(row["store_id"], row["name"], row["zone_id"], row["plugin"], row["sealed_config"])


def _image(row: Any) -> ImageRow:  # Any: asyncpg.Record
    return ImageRow(
        image_id=row["image_id"],
        name=row["name"],
        kind=ImageKind(row["kind"]),
        format=ImageFormat(row["format"]),
        zone_id=row["zone_id"],
        url=row["url"],
        checksum=row["checksum"],
        size_bytes=row["size_bytes"],
        virtual_size_bytes=row["virtual_size_bytes"],
        deleting=row["deleting"],
        request=json.loads(row["request"]),
        created_at=row["created_at"],
    )


def copy_from_row(row: Any) -> CopyRow:  # Any: asyncpg.Record
    return CopyRow(
        image_id=row["image_id"],
        store_id=row["store_id"],
        state=DownloadState(row["state"]),
        done_bytes=row["done_bytes"],
        total_bytes=row["total_bytes"],
        attempts=row["attempts"],
        error=row["error"],
        checksum=row["checksum"],
        source_store_id=row["source_store_id"],
        request=json.loads(row["request"]) if row["request"] else None,
    )


# ---------------------------------------------------------------------------------------------------- stores


async def insert_store(connection: Connection, row: StoreRow, *, masked_config: str) -> None:
    """Record a new store."""
    await connection.execute(
        f"INSERT INTO {SCHEMA}.stores (store_id, name, zone_id, plugin, config, sealed_config) "
        "VALUES ($1, $2, $3, $4, $5::jsonb, $6)",
        row.store_id,
        row.name,
        row.zone_id,
        row.plugin,
        masked_config,
        row.sealed_config,
    )


async def find_store(connection: Connection, store_id: UUID, *, removed: bool = False) -> StoreRow | None:
    """The store (a removed one only when asked)."""
    row = await connection.fetchrow(
        f"SELECT * FROM {SCHEMA}.stores WHERE store_id = $1 AND ($2 OR NOT removed)", store_id, removed
    )
    return None if row is None else store_from_row(row)


async def store_name_taken(connection: Connection, zone_id: UUID, name: str) -> bool:
    """Whether a store in use in the zone has the name."""
    return bool(
        await connection.fetchval(
            f"SELECT EXISTS (SELECT 1 FROM {SCHEMA}.stores WHERE zone_id = $1 AND name = $2 AND NOT removed)",
            zone_id,
            name,
        )
    )


async def zone_stores(connection: Connection, zone_id: UUID) -> list[StoreRow]:
    """The stores in use in the zone, by name."""
    rows = await connection.fetch(
        f"SELECT * FROM {SCHEMA}.stores WHERE zone_id = $1 AND NOT removed ORDER BY name", zone_id
    )
    return [store_from_row(row) for row in rows]


async def images_in_store(connection: Connection, store_id: UUID) -> list[str]:
    """The names of the images the store holds or is downloading."""
    rows = await connection.fetch(
        f"SELECT i.name FROM {SCHEMA}.copies c JOIN {SCHEMA}.images i USING (image_id) "
        "WHERE c.store_id = $1 AND c.state <> $2 ORDER BY i.name",
        store_id,
        DownloadState.DOWNLOAD_ERROR.value,
    )
    return [row["name"] for row in rows]


async def remove_store(connection: Connection, store_id: UUID) -> None:
    """Mark the store removed and forget its failed copies; its configuration is erased."""
    await connection.execute(f"DELETE FROM {SCHEMA}.copies WHERE store_id = $1", store_id)
    await connection.execute(
        f"UPDATE {SCHEMA}.stores SET removed = true, config = '{{}}'::jsonb, sealed_config = '' WHERE store_id = $1",
        store_id,
    )


async def list_stores(connection: Connection, zone_id: UUID | None) -> list[tuple[StoreRow, int]]:
    """The stores in use (of one zone or all) and how many images each holds or is downloading."""
    rows = await connection.fetch(
        f"SELECT s.*, (SELECT count(*) FROM {SCHEMA}.copies c WHERE c.store_id = s.store_id) AS images "
        f"FROM {SCHEMA}.stores s WHERE NOT s.removed AND ($1::uuid IS NULL OR s.zone_id = $1) ORDER BY s.name",
        zone_id,
    )
    return [(store_from_row(row), row["images"]) for row in rows]


# ---------------------------------------------------------------------------------------------------- images


async def insert_image(connection: Connection, row: ImageRow, store_ids: list[UUID]) -> None:
    """Record a new image and its copy in each store, NOT_DOWNLOADED."""
    await connection.execute(
        f"INSERT INTO {SCHEMA}.images (image_id, name, kind, format, zone_id, url, checksum, request, "
        "virtual_size_bytes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9)",
        row.image_id,
        row.name,
        row.kind.value,
        row.format.value,
        row.zone_id,
        row.url,
        row.checksum,
        json.dumps(row.request),
        row.virtual_size_bytes,
    )
    await connection.executemany(
        f"INSERT INTO {SCHEMA}.copies (image_id, store_id, state) VALUES ($1, $2, $3)",
        [(row.image_id, store_id, DownloadState.NOT_DOWNLOADED.value) for store_id in store_ids],
    )


async def find_image(connection: Connection, image_id: UUID) -> ImageRow | None:
    """The image, or None."""
    row = await connection.fetchrow(f"SELECT * FROM {SCHEMA}.images WHERE image_id = $1", image_id)
    return None if row is None else _image(row)


async def image_name_taken(connection: Connection, zone_id: UUID, kind: ImageKind, name: str) -> bool:
    """Whether an image of the kind in the zone has the name."""
    return bool(
        await connection.fetchval(
            f"SELECT EXISTS (SELECT 1 FROM {SCHEMA}.images "
            "WHERE zone_id = $1 AND kind = $2 AND name = $3 AND NOT deleting)",
            zone_id,
            kind.value,
            name,
        )
    )


async def copies_of(connection: Connection, image_id: UUID) -> list[tuple[CopyRow, str]]:
    """The image's copies, each with its store's name."""
    rows = await connection.fetch(
        f"SELECT c.*, s.name AS store_name FROM {SCHEMA}.copies c JOIN {SCHEMA}.stores s USING (store_id) "
        "WHERE c.image_id = $1 ORDER BY s.name",
        image_id,
    )
    return [(copy_from_row(row), row["store_name"]) for row in rows]


async def find_copy(connection: Connection, image_id: UUID, store_id: UUID) -> CopyRow | None:
    """The image's copy in the store, or None."""
    row = await connection.fetchrow(
        f"SELECT * FROM {SCHEMA}.copies WHERE image_id = $1 AND store_id = $2", image_id, store_id
    )
    return None if row is None else copy_from_row(row)


async def mark_deleting(connection: Connection, image_id: UUID, request: dict[str, Any]) -> None:
    """Accept the image's delete: the worker removes its copies, then the image (`request` is answered then)."""
    await connection.execute(
        f"UPDATE {SCHEMA}.images SET deleting = true, request = $2::jsonb, version = version + 1 WHERE image_id = $1",
        image_id,
        json.dumps(request),
    )


async def list_images(
    connection: Connection, *, image_id: UUID | None, kind: ImageKind | None, zone_id: UUID | None, limit: int
) -> list[ImageRow]:
    """Images (registered in the zone or copied to one of its stores), newest first."""
    rows = await connection.fetch(
        f"SELECT * FROM {SCHEMA}.images i WHERE ($1::uuid IS NULL OR image_id = $1) "
        "AND ($2::text IS NULL OR kind = $2) AND ($3::uuid IS NULL OR zone_id = $3 OR EXISTS "
        f"(SELECT 1 FROM {SCHEMA}.copies c JOIN {SCHEMA}.stores s USING (store_id) "
        "WHERE c.image_id = i.image_id AND s.zone_id = $3)) ORDER BY created_at DESC, image_id LIMIT $4",
        image_id,
        kind.value if kind else None,
        zone_id,
        limit,
    )
    return [_image(row) for row in rows]


# ------------------------------------------------------------------------------------------ the worker's side


async def claim_copy(connection: Connection, lease_seconds: float) -> CopyRow | None:
    """Take the oldest copy waiting for a download (or whose worker's lease ran out), DOWNLOAD_IN_PROGRESS now."""
    row = await connection.fetchrow(
        f"UPDATE {SCHEMA}.copies c SET state = $1, attempts = attempts + 1, updated_at = now(), "
        "lease_until = now() + make_interval(secs => $2) "
        f"WHERE (image_id, store_id) = (SELECT image_id, store_id FROM {SCHEMA}.copies "
        "WHERE state = ANY($3::text[]) AND (lease_until IS NULL OR lease_until < now()) "
        "ORDER BY updated_at LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING c.*",
        DownloadState.DOWNLOAD_IN_PROGRESS.value,
        lease_seconds,
        list(WORK_STATES),
    )
    return None if row is None else copy_from_row(row)


async def record_progress(
    connection: Connection, copy: CopyRow, done_bytes: int, total_bytes: int | None, lease_seconds: float
) -> bool:
    """Keep the download's figures and extend its lease; False (nothing changed) when another worker took the copy
    since (its attempt is no longer this one's)."""
    recorded = await connection.fetchval(
        f"UPDATE {SCHEMA}.copies SET done_bytes = $3, total_bytes = $4, updated_at = now(), "
        "lease_until = now() + make_interval(secs => $5) WHERE image_id = $1 AND store_id = $2 AND attempts = $6 "
        "RETURNING true",
        copy.image_id,
        copy.store_id,
        done_bytes,
        total_bytes,
        lease_seconds,
        copy.attempts,
    )
    return bool(recorded)


async def extend_lease(connection: Connection, copy: CopyRow, lease_seconds: float) -> bool:
    """Keep a download's lease while its worker works on it (fetching, checking, storing); False when another worker
    took the copy since (its attempt is no longer this one's: this worker's lease ran out while it lived)."""
    held = await connection.fetchval(
        f"UPDATE {SCHEMA}.copies SET lease_until = CASE WHEN state = $4 "
        "THEN now() + make_interval(secs => $3) ELSE lease_until END "
        "WHERE image_id = $1 AND store_id = $2 AND attempts = $5 RETURNING true",
        copy.image_id,
        copy.store_id,
        lease_seconds,
        DownloadState.DOWNLOAD_IN_PROGRESS.value,
        copy.attempts,
    )
    return bool(held)


async def release_copy(connection: Connection, copy: CopyRow, error: str) -> bool:
    """Give a copy back for another attempt (a passing failure), keeping why the last one failed; False (nothing
    changed) when another worker took it since."""
    released = await connection.fetchval(
        f"UPDATE {SCHEMA}.copies SET lease_until = NULL, error = $3, updated_at = now() "
        "WHERE image_id = $1 AND store_id = $2 AND attempts = $4 RETURNING true",
        copy.image_id,
        copy.store_id,
        error,
        copy.attempts,
    )
    return bool(released)


async def finish_copy(
    connection: Connection,
    copy: CopyRow,
    state: DownloadState,
    *,
    error: str | None = None,
    checksum: str | None = None,
    size_bytes: int | None = None,
    virtual_size_bytes: int | None = None,
) -> bool:
    """Record a download's end (DOWNLOADED or DOWNLOAD_ERROR) and, when it succeeded, the image's sizes; False
    (nothing changed) when another worker took the copy since: its end is that worker's to record."""
    finished = await connection.fetchval(
        f"UPDATE {SCHEMA}.copies SET state = $3, error = $4, checksum = $5, lease_until = NULL, updated_at = now(), "
        "done_bytes = COALESCE($6, done_bytes), total_bytes = COALESCE($6, total_bytes) "
        "WHERE image_id = $1 AND store_id = $2 AND attempts = $7 RETURNING true",
        copy.image_id,
        copy.store_id,
        state.value,
        error,
        checksum,
        size_bytes,
        copy.attempts,
    )
    if not finished:
        return False
    if size_bytes is not None:
        await connection.execute(
            f"UPDATE {SCHEMA}.images SET size_bytes = $2, virtual_size_bytes = $3, version = version + 1 "
            "WHERE image_id = $1",
            copy.image_id,
            size_bytes,
            virtual_size_bytes,
        )
    return True


async def claim_deletion(connection: Connection) -> ImageRow | None:
    """An image whose delete was accepted and that no download holds, locked for this transaction."""
    row = await connection.fetchrow(
        f"SELECT * FROM {SCHEMA}.images i WHERE deleting AND NOT EXISTS (SELECT 1 FROM {SCHEMA}.copies c "
        "WHERE c.image_id = i.image_id AND c.state = ANY($1::text[])) "
        "ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED",
        list(WORK_STATES),
    )
    return None if row is None else _image(row)


async def delete_image(connection: Connection, image_id: UUID) -> bool:
    """Forget a deleted image and its copies; whether it was still there (one replica answers the delete)."""
    deleted = await connection.fetchval(f"DELETE FROM {SCHEMA}.images WHERE image_id = $1 RETURNING true", image_id)
    return bool(deleted)


async def insert_zone_copies(
    connection: Connection, image_id: UUID, source_store_id: UUID, store_ids: list[UUID], request: dict[str, Any]
) -> None:
    """Record the image's copies in another zone's stores, NOT_DOWNLOADED, fed from `source_store_id`."""
    await connection.executemany(
        f"INSERT INTO {SCHEMA}.copies (image_id, store_id, state, source_store_id, request) "
        "VALUES ($1, $2, $3, $4, $5::jsonb)",
        [
            (image_id, store_id, DownloadState.NOT_DOWNLOADED.value, source_store_id, json.dumps(request))
            for store_id in store_ids
        ],
    )


async def hold_copy(connection: Connection, image_id: UUID, store_id: UUID, lease_seconds: float) -> None:
    """Mark a copy that an agent makes (a template from a volume) DOWNLOAD_IN_PROGRESS, leased so that no worker
    takes it meanwhile; the agent's answer ends it."""
    await connection.execute(
        f"UPDATE {SCHEMA}.copies SET state = $3, attempts = 1, lease_until = now() + make_interval(secs => $4) "
        "WHERE image_id = $1 AND store_id = $2",
        image_id,
        store_id,
        DownloadState.DOWNLOAD_IN_PROGRESS.value,
        lease_seconds,
    )
