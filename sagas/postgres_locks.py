"""The saga locks in PostgreSQL: taken all or none in canonical order, leased, fenced, with a line of waiters.

Locks are taken in canonical (sorted) order so that two sagas wanting overlapping sets cannot deadlock; a release
locks its rows in the same order. Mixed into `PostgresSagaSession`.
"""

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from bus.postgres.pool import PoolConnection
from sagas.ports import LockOutcome, LockResult
from sagas.records import LockHolder


class PostgresLockStatements:
    """The lock half of a saga session, on one connection in a transaction."""

    def __init__(self, connection: PoolConnection, schema: str) -> None:
        self._db = connection
        self._s = schema

    async def acquire_locks(
        self, saga_id: UUID, resources: Sequence[str], *, lease: float, now: datetime, queue: bool
    ) -> LockResult:
        wanted = sorted(set(resources))
        # Rows first (sorted, so concurrent inserts of the same new names queue up in one order), then locked in
        # the same canonical order.
        await self._db.execute(
            f"INSERT INTO {self._s}.locks (resource) SELECT unnest($1::text[]) ORDER BY 1 ON CONFLICT DO NOTHING",
            wanted,
        )
        rows = await self._db.fetch(
            f"SELECT resource, holder, token, expires_at FROM {self._s}.locks WHERE resource = ANY($1::text[]) "
            "ORDER BY resource FOR UPDATE",
            wanted,
        )
        held = tuple(
            LockHolder(row["resource"], row["holder"], row["token"], row["expires_at"])
            for row in rows
            if row["holder"] is not None and row["holder"] != saga_id and row["expires_at"] > now
        )
        ahead = await self._db.fetchval(
            f"SELECT count(*) FROM {self._s}.lock_line AS other WHERE other.resource = ANY($1::text[]) "
            "AND other.saga_id <> $2 AND other.position < coalesce("
            f"  (SELECT min(position) FROM {self._s}.lock_line WHERE saga_id = $2), 9223372036854775807)",
            wanted,
            saga_id,
        )
        if not held and not ahead:
            token = await self._db.fetchval(
                f"WITH token AS (SELECT nextval('{self._s}.fencing_tokens') AS value) "
                f"UPDATE {self._s}.locks SET holder = $2, token = token.value, "
                "expires_at = $3::timestamptz + make_interval(secs => $4) FROM token "
                "WHERE resource = ANY($1::text[]) RETURNING token.value",
                wanted,
                saga_id,
                now,
                lease,
            )
            await self._db.execute(f"DELETE FROM {self._s}.lock_line WHERE saga_id = $1", saga_id)
            return LockResult(LockOutcome.ACQUIRED, token=int(token))
        if not queue:
            return LockResult(LockOutcome.REFUSED, holders=held)
        await self._db.execute(
            f"WITH place AS (SELECT coalesce((SELECT min(position) FROM {self._s}.lock_line WHERE saga_id = $1),"
            f"                                nextval('{self._s}.line_positions')) AS position) "
            f"INSERT INTO {self._s}.lock_line (saga_id, resource, position) "
            "SELECT $1, unnest($2::text[]), place.position FROM place ON CONFLICT DO NOTHING",
            saga_id,
            wanted,
        )
        return LockResult(LockOutcome.QUEUED, holders=held)

    async def release_locks(self, saga_id: UUID) -> list[UUID]:
        # Rows are locked in canonical order first, as acquire_locks does, so that a release and an acquisition
        # of overlapping resources queue up instead of deadlocking.
        released = await self._db.fetch(
            f"UPDATE {self._s}.locks SET holder = NULL, token = NULL, expires_at = NULL WHERE resource IN ("
            f"  SELECT resource FROM {self._s}.locks WHERE holder = $1 ORDER BY resource FOR UPDATE) "
            "RETURNING resource",
            saga_id,
        )
        await self.leave_line(saga_id)
        if not released:
            return []
        rows = await self._db.fetch(
            f"SELECT saga_id, min(position) AS position FROM {self._s}.lock_line WHERE resource = ANY($1::text[]) "
            "GROUP BY saga_id ORDER BY 2",
            [row["resource"] for row in released],
        )
        return [row["saga_id"] for row in rows]

    async def renew_locks(self, saga_id: UUID, until: datetime) -> None:
        await self._db.execute(
            f"UPDATE {self._s}.locks SET expires_at = $2 WHERE resource IN ("
            f"  SELECT resource FROM {self._s}.locks WHERE holder = $1 ORDER BY resource FOR UPDATE) AND holder = $1",
            saga_id,
            until,
        )

    async def leave_line(self, saga_id: UUID) -> None:
        await self._db.execute(f"DELETE FROM {self._s}.lock_line WHERE saga_id = $1", saga_id)

    async def list_locks(self, saga_id: UUID | None = None) -> list[LockHolder]:
        rows = await self._db.fetch(
            f"SELECT resource, holder, token, expires_at FROM {self._s}.locks "
            "WHERE holder IS NOT NULL AND ($1::uuid IS NULL OR holder = $1) ORDER BY resource",
            saga_id,
        )
        return [LockHolder(row["resource"], row["holder"], row["token"], row["expires_at"]) for row in rows]
