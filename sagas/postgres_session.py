"""`PostgresSagaSession`: one transaction on the saga tables in PostgreSQL, through asyncpg.

A session runs in the unit of work's transaction when given one (so the saga's state, its outbox rows and its
inbox row commit together), or in a transaction of its own. The saga row is locked with SELECT ... FOR UPDATE;
timers are claimed with FOR UPDATE SKIP LOCKED, so coordinators share them without waiting on each other. The
locks are `sagas.postgres_locks`.
"""

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from uuid import UUID

from bus.postgres.pool import PoolConnection
from sagas.postgres_literals import deferred_write
from sagas.postgres_locks import PostgresLockStatements
from sagas.postgres_rows import (
    INSTANCE_COLUMNS,
    instance_from_row,
    instance_row,
    instance_update,
    steps_columns,
    steps_upsert,
)
from sagas.records import SagaEvent, SagaInstance, SagaStatus, StepRecord, Timer, TimerKind
from sagas.serialize import step_from_json


class PostgresSagaSession(PostgresLockStatements):
    """A session on one connection in a transaction; see `SagaSession` for what each method promises."""

    def __init__(self, connection: PoolConnection, schema: str, defer: Callable[[str], None] | None = None) -> None:
        super().__init__(connection, schema)
        self._defer = defer  # the unit of work's: the final write travels with its COMMIT

    async def insert_instance(self, instance: SagaInstance) -> bool:
        status = await self._db.execute(
            f"INSERT INTO {self._s}.instances ({INSTANCE_COLUMNS}) "
            "VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7::jsonb, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING",
            *instance_row(instance),
        )
        return not status.endswith(" 0")

    async def lock_instance(self, saga_id: UUID) -> SagaInstance | None:
        row = await self._db.fetchrow(
            f"SELECT {INSTANCE_COLUMNS} FROM {self._s}.instances WHERE saga_id = $1 FOR UPDATE", saga_id
        )
        return instance_from_row(row) if row else None

    async def get_instance(self, saga_id: UUID) -> SagaInstance | None:
        row = await self._db.fetchrow(f"SELECT {INSTANCE_COLUMNS} FROM {self._s}.instances WHERE saga_id = $1", saga_id)
        return instance_from_row(row) if row else None

    async def lock_saga(self, saga_id: UUID) -> tuple[SagaInstance, list[StepRecord]] | None:
        # One round trip through a function that locks first and reads after (see migration 0002): a single
        # SELECT ... FOR UPDATE would read the steps from its snapshot taken before it waited for the lock.
        row = await self._db.fetchrow(f"SELECT * FROM {self._s}.lock_saga($1)", saga_id)
        if row is None:
            return None
        return instance_from_row(row), [step_from_json(saga_id, step) for step in json.loads(row["steps"])]

    async def write(
        self,
        instance: SagaInstance,
        steps: Sequence[StepRecord],
        timers: Sequence[Timer],
        events: Sequence[SagaEvent],
    ) -> None:
        # One statement: the saga's whole change is one round trip, whatever it touches; none at all in a unit of
        # work, where it goes with the COMMIT (the engine writes once, last, and reads nothing after).
        if self._defer is not None:
            self._defer(deferred_write(self._s, instance, steps, timers, events))
            return
        await self._db.execute(
            f"WITH saved_steps AS ({steps_upsert(self._s, 8)}), "
            f"new_timers AS (INSERT INTO {self._s}.timers (saga_id, seq, kind, attempt, due_at) "
            "  SELECT * FROM unnest($13::uuid[], $14::int[], $15::text[], $16::int[], $17::timestamptz[])), "
            f"new_events AS (INSERT INTO {self._s}.events (saga_id, at, kind, detail) "
            "  SELECT * FROM unnest($18::uuid[], $19::timestamptz[], $20::text[], $21::jsonb[])) "
            f"UPDATE {self._s}.instances SET status = $2, result = $3::jsonb, error = $4, pivoted = $5, "
            "fencing_token = $6, updated_at = $7, revision = revision + 1 WHERE saga_id = $1",
            *instance_update(instance),
            *steps_columns(steps),
            [timer.saga_id for timer in timers],
            [timer.seq for timer in timers],
            [timer.kind.value for timer in timers],
            [timer.attempt for timer in timers],
            [timer.due_at for timer in timers],
            [event.saga_id for event in events],
            [event.at for event in events],
            [event.kind for event in events],
            [json.dumps(event.detail) for event in events],
        )

    async def save_instance(self, instance: SagaInstance) -> None:
        await self._db.execute(
            f"UPDATE {self._s}.instances SET status = $2, result = $3::jsonb, error = $4, pivoted = $5, "
            "fencing_token = $6, updated_at = $7, revision = revision + 1 WHERE saga_id = $1",
            *instance_update(instance),
        )

    async def load_steps(self, saga_id: UUID) -> list[StepRecord]:
        rows = await self._db.fetch(f"SELECT record FROM {self._s}.steps WHERE saga_id = $1 ORDER BY seq", saga_id)
        return [step_from_json(saga_id, json.loads(row["record"])) for row in rows]

    async def save_steps(self, records: Sequence[StepRecord]) -> None:
        await self._db.execute(steps_upsert(self._s, 1), *steps_columns(records))

    async def add_timer(self, timer: Timer) -> None:
        await self._db.execute(
            f"INSERT INTO {self._s}.timers (saga_id, seq, kind, attempt, due_at) VALUES ($1, $2, $3, $4, $5)",
            timer.saga_id,
            timer.seq,
            timer.kind.value,
            timer.attempt,
            timer.due_at,
        )

    async def claim_due_timer(self, now: datetime) -> Timer | None:
        row = await self._db.fetchrow(
            f"DELETE FROM {self._s}.timers WHERE timer_id = ("
            f"  SELECT timer_id FROM {self._s}.timers WHERE due_at <= $1 ORDER BY due_at, timer_id "
            "   LIMIT 1 FOR UPDATE SKIP LOCKED) "
            "RETURNING timer_id, saga_id, seq, kind, attempt, due_at",
            now,
        )
        if row is None:
            return None
        return Timer(row["saga_id"], row["seq"], TimerKind(row["kind"]), row["attempt"], row["due_at"], row["timer_id"])

    async def record_event(self, event: SagaEvent) -> None:
        await self._db.execute(
            f"INSERT INTO {self._s}.events (saga_id, at, kind, detail) VALUES ($1, $2, $3, $4::jsonb)",
            event.saga_id,
            event.at,
            event.kind,
            json.dumps(event.detail),
        )

    async def list_events(self, saga_id: UUID) -> list[SagaEvent]:
        rows = await self._db.fetch(
            f"SELECT saga_id, at, kind, detail FROM {self._s}.events WHERE saga_id = $1 ORDER BY event_id", saga_id
        )
        return [SagaEvent(row["saga_id"], row["at"], row["kind"], json.loads(row["detail"])) for row in rows]

    async def list_instances(
        self, *, status: SagaStatus | None = None, name: str | None = None, limit: int = 100
    ) -> list[SagaInstance]:
        rows = await self._db.fetch(
            f"SELECT {INSTANCE_COLUMNS} FROM {self._s}.instances "
            "WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR name = $2) "
            "ORDER BY created_at DESC, saga_id DESC LIMIT $3",
            status.value if status else None,
            name,
            limit,
        )
        return [instance_from_row(row) for row in rows]

    async def find_ids(self, prefix: str, *, limit: int = 3) -> list[UUID]:
        """The ids of sagas whose id starts with `prefix` (hex digits and dashes only), at most `limit`."""
        if not prefix or any(char not in "0123456789abcdef-" for char in prefix.lower()):
            return []
        rows = await self._db.fetch(
            f"SELECT saga_id FROM {self._s}.instances WHERE saga_id::text LIKE $1 ORDER BY saga_id LIMIT $2",
            prefix.lower() + "%",
            limit,
        )
        return [row["saga_id"] for row in rows]
