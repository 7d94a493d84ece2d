"""`PostgresSagaStore`: the saga tables in PostgreSQL (schema `sagas` by default), through asyncpg.

A session runs in the unit of work's transaction when given one (so the saga's state, its outbox rows and its
inbox row commit together), or in a transaction of its own. The saga row is locked with SELECT ... FOR UPDATE;
timers are claimed with FOR UPDATE SKIP LOCKED, so coordinators share them without waiting on each other; locks
are taken in canonical (sorted) order so that two sagas wanting overlapping sets cannot deadlock. Driver errors
leave as strata's errors.
"""

import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from bus.ports import UnitOfWork
from bus.postgres.errors import translated_errors
from bus.postgres.literals import literal
from bus.postgres.migrate import validate_schema
from bus.postgres.pool import Pool, PoolConnection
from bus.postgres.unit_of_work import PostgresUnitOfWork
from sagas.ports import LockOutcome, LockResult
from sagas.postgres_literals import deferred_write
from sagas.postgres_units import SagaUnitOfWork
from sagas.records import LockHolder, SagaEvent, SagaInstance, SagaStatus, StepRecord, Timer, TimerKind
from sagas.serialize import message_from_json, message_to_json, step_from_json, step_to_json

DEFAULT_SCHEMA = "sagas"
_INSTANCE_COLUMNS = (
    "saga_id, name, version, status, input, correlation_id, result, error, pivoted, fencing_token, "
    "created_at, updated_at"
)


class PostgresSagaSession:
    """A session on one connection in a transaction; see `SagaSession` for what each method promises."""

    def __init__(self, connection: PoolConnection, schema: str, defer: Callable[[str], None] | None = None) -> None:
        self._db = connection
        self._s = schema
        self._defer = defer  # the unit of work's: the final write travels with its COMMIT

    async def insert_instance(self, instance: SagaInstance) -> bool:
        status = await self._db.execute(
            f"INSERT INTO {self._s}.instances ({_INSTANCE_COLUMNS}) "
            "VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7::jsonb, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING",
            *_instance_row(instance),
        )
        return not status.endswith(" 0")

    async def lock_instance(self, saga_id: UUID) -> SagaInstance | None:
        row = await self._db.fetchrow(
            f"SELECT {_INSTANCE_COLUMNS} FROM {self._s}.instances WHERE saga_id = $1 FOR UPDATE", saga_id
        )
        return _instance(row) if row else None

    async def get_instance(self, saga_id: UUID) -> SagaInstance | None:
        row = await self._db.fetchrow(
            f"SELECT {_INSTANCE_COLUMNS} FROM {self._s}.instances WHERE saga_id = $1", saga_id
        )
        return _instance(row) if row else None

    async def lock_saga(self, saga_id: UUID) -> tuple[SagaInstance, list[StepRecord]] | None:
        # One round trip through a function that locks first and reads after (see migration 0002): a single
        # SELECT ... FOR UPDATE would read the steps from its snapshot taken before it waited for the lock.
        row = await self._db.fetchrow(f"SELECT * FROM {self._s}.lock_saga($1)", saga_id)
        if row is None:
            return None
        return _instance(row), [step_from_json(saga_id, step) for step in json.loads(row["steps"])]

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
            f"WITH saved_steps AS ({_steps_upsert(self._s, 8)}), "
            f"new_timers AS (INSERT INTO {self._s}.timers (saga_id, seq, kind, attempt, due_at) "
            "  SELECT * FROM unnest($13::uuid[], $14::int[], $15::text[], $16::int[], $17::timestamptz[])), "
            f"new_events AS (INSERT INTO {self._s}.events (saga_id, at, kind, detail) "
            "  SELECT * FROM unnest($18::uuid[], $19::timestamptz[], $20::text[], $21::jsonb[])) "
            f"UPDATE {self._s}.instances SET status = $2, result = $3::jsonb, error = $4, pivoted = $5, "
            "fencing_token = $6, updated_at = $7, revision = revision + 1 WHERE saga_id = $1",
            *_instance_update(instance),
            *_steps_columns(steps),
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
            *_instance_update(instance),
        )

    async def load_steps(self, saga_id: UUID) -> list[StepRecord]:
        rows = await self._db.fetch(f"SELECT record FROM {self._s}.steps WHERE saga_id = $1 ORDER BY seq", saga_id)
        return [step_from_json(saga_id, json.loads(row["record"])) for row in rows]

    async def save_steps(self, records: Sequence[StepRecord]) -> None:
        await self._db.execute(_steps_upsert(self._s, 1), *_steps_columns(records))

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
            f"SELECT {_INSTANCE_COLUMNS} FROM {self._s}.instances "
            "WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR name = $2) "
            "ORDER BY created_at DESC, saga_id DESC LIMIT $3",
            status.value if status else None,
            name,
            limit,
        )
        return [_instance(row) for row in rows]


class NeedsTransaction(Exception):
    """An optimistic session was asked for what only a begun transaction can do (locks, timers, reads after)."""


@dataclass(slots=True)
class KnownSaga:
    """A saga as this process committed it: its revision, instance and journal, and the commands it sent then."""

    revision: int
    instance: SagaInstance
    steps: list[StepRecord]
    sent: frozenset[UUID]


class SagaCache:
    """The sagas this process wrote last, so that a reply to a command it sent needs no read of its saga.

    An entry is used once, and only for a reply to a command sent by the commit that wrote it: when that reply went
    to another coordinator, this one's entry is stale and is never used. It is taken out while in use (a failed commit
    leaves no entry) and put back by the next commit. The commit checks the revision anyway (`expect_revision`):
    a saga written meanwhile (a timer, an operator, another reply of parallel steps) is handled again.
    """

    def __init__(self, size: int = 4096) -> None:
        self._known: OrderedDict[UUID, KnownSaga] = OrderedDict()
        self._size = size

    def take(self, saga_id: UUID, cause: UUID | None) -> KnownSaga | None:
        """The entry for a message caused by `cause` (a reply to that command), None if there is none for it."""
        known = self._known.get(saga_id)
        if known is None or cause is None or cause not in known.sent:
            return None  # a late or repeated reply, or none at all: the entry waits for the reply it expects
        return self._known.pop(saga_id)

    def keep(self, saga_id: UUID, known: KnownSaga) -> None:
        """Remember what a commit wrote (the least recently written entry goes when the cache is full)."""
        self._known[saga_id] = known
        if len(self._known) > self._size:
            self._known.popitem(last=False)

    def __len__(self) -> int:
        return len(self._known)


class OptimisticSagaSession(PostgresSagaSession):
    """A session in a unit of work that has not begun (`sagas.postgres_units`): reads without locking, defers writes.

    It serves the engine's usual path for a start or a reply: `insert_instance`, `renew_locks` and `write` are
    deferred to the commit, `lock_saga` reads the saga in one statement (or takes it from the cache) and defers
    `expect_revision` ahead of the writes, so the commit locks the row and fails if anyone wrote the saga since.
    Anything else raises `NeedsTransaction` before touching the database; the caller then begins the unit and
    handles the message the locking way.
    """

    def __init__(
        self,
        uow: SagaUnitOfWork,
        schema: str,
        cache: SagaCache | None = None,
        cause: UUID | None = None,
    ) -> None:
        super().__init__(uow.connection, schema, uow.defer)
        self._uow = uow
        self._later = uow.defer
        self._cache = cache
        self._cause = cause
        self._created: SagaInstance | None = None  # inserted by `write`, with its steps, in one statement
        self._loaded: tuple[int, dict[int, StepRecord]] | None = None  # the revision read and the journal

    async def insert_instance(self, instance: SagaInstance) -> bool:
        self._created = instance
        self._loaded = (0, {})
        return True

    async def write(
        self,
        instance: SagaInstance,
        steps: Sequence[StepRecord],
        timers: Sequence[Timer],
        events: Sequence[SagaEvent],
    ) -> None:
        created, self._created = self._created is instance, None
        self._later(deferred_write(self._s, instance, steps, timers, events, created=created))
        cache, loaded = self._cache, self._loaded
        if cache is None or loaded is None or instance.status.ended:
            return
        revision, journal = loaded
        journal.update((step.seq, step) for step in steps)
        uow = self._uow

        def keep() -> None:  # once committed: the state written is the saga at revision + 1
            sent = frozenset(item.envelope.message_id for item in uow.emitted)
            known = KnownSaga(revision + 1, instance, [journal[seq] for seq in sorted(journal)], sent)
            cache.keep(instance.saga_id, known)

        uow.after_commit(keep)

    async def lock_saga(self, saga_id: UUID) -> tuple[SagaInstance, list[StepRecord]] | None:
        known = self._cache.take(saga_id, self._cause) if self._cache is not None else None
        if known is not None:
            revision, instance, steps = known.revision, known.instance, known.steps
        else:
            row = await self._db.fetchrow(
                f"SELECT {_INSTANCE_COLUMNS}, revision, (SELECT coalesce(json_agg(s.record ORDER BY s.seq), "
                f"'[]'::json) FROM {self._s}.steps AS s WHERE s.saga_id = $1) AS steps "
                f"FROM {self._s}.instances WHERE saga_id = $1",
                saga_id,
            )
            if row is None:
                raise NeedsTransaction("an unknown saga")  # ignored the locking way, which also logs it
            revision, instance = int(row["revision"]), _instance(row)
            steps = [step_from_json(saga_id, step) for step in json.loads(row["steps"])]
        self._later(f"SELECT {self._s}.expect_revision({literal(saga_id)}, {revision})")
        self._loaded = (revision, {step.seq: step for step in steps})
        return instance, steps

    async def lock_instance(self, saga_id: UUID) -> SagaInstance | None:
        raise NeedsTransaction("lock_instance")

    async def get_instance(self, saga_id: UUID) -> SagaInstance | None:
        raise NeedsTransaction("get_instance")

    async def save_instance(self, instance: SagaInstance) -> None:
        raise NeedsTransaction("save_instance")

    async def load_steps(self, saga_id: UUID) -> list[StepRecord]:
        raise NeedsTransaction("load_steps")

    async def save_steps(self, records: Sequence[StepRecord]) -> None:
        raise NeedsTransaction("save_steps")

    async def add_timer(self, timer: Timer) -> None:
        raise NeedsTransaction("add_timer")

    async def claim_due_timer(self, now: datetime) -> Timer | None:
        raise NeedsTransaction("claim_due_timer")

    async def acquire_locks(
        self, saga_id: UUID, resources: Sequence[str], *, lease: float, now: datetime, queue: bool
    ) -> LockResult:
        raise NeedsTransaction("acquire_locks")

    async def release_locks(self, saga_id: UUID) -> list[UUID]:
        raise NeedsTransaction("release_locks")

    async def renew_locks(self, saga_id: UUID, until: datetime) -> None:
        # A write whose answer nobody needs: it goes with the commit, after expect_revision locked the saga's row.
        holder = literal(saga_id)
        self._later(
            f"UPDATE {self._s}.locks SET expires_at = {literal(until)} WHERE resource IN ("
            f"  SELECT resource FROM {self._s}.locks WHERE holder = {holder} ORDER BY resource FOR UPDATE) "
            f"AND holder = {holder}"
        )

    async def leave_line(self, saga_id: UUID) -> None:
        raise NeedsTransaction("leave_line")

    async def record_event(self, event: SagaEvent) -> None:
        raise NeedsTransaction("record_event")


class PostgresSagaStore:
    """The saga store on a pool; run `migrate` once before use (daemons do it at start)."""

    def __init__(self, pool: Pool, *, schema: str = DEFAULT_SCHEMA) -> None:
        self.pool = pool
        self.schema = validate_schema(schema)

    async def next_timer_at(self) -> datetime | None:
        """When the earliest timer is due, None if there is none (one statement, no transaction)."""
        with translated_errors():
            due: datetime | None = await self.pool.fetchval(f"SELECT min(due_at) FROM {self.schema}.timers")
        return due

    @asynccontextmanager
    async def optimistic_session(
        self, uow: SagaUnitOfWork, cache: SagaCache | None = None, cause: UUID | None = None
    ) -> AsyncIterator[OptimisticSagaSession]:
        """A session in `uow` before it has begun, for a message caused by `cause`: see `OptimisticSagaSession`."""
        with translated_errors():
            yield OptimisticSagaSession(uow, self.schema, cache, cause)

    @asynccontextmanager
    async def session(self, uow: UnitOfWork | None = None) -> AsyncIterator[PostgresSagaSession]:
        """A session in `uow`'s transaction, or in one of its own committed at exit."""
        with translated_errors():
            if uow is not None:
                defer = uow.defer if isinstance(uow, PostgresUnitOfWork) else None
                yield PostgresSagaSession(uow.connection, self.schema, defer)
                return
            async with self.pool.acquire() as connection, connection.transaction():
                yield PostgresSagaSession(connection, self.schema)


def _steps_upsert(schema: str, first: int) -> str:
    """The journal upsert from the column arrays of `_steps_columns`, as parameters $first..$first+4."""
    p = [f"${first + offset}" for offset in range(5)]
    return (
        f"INSERT INTO {schema}.steps (saga_id, seq, kind, status, record) "
        f"SELECT * FROM unnest({p[0]}::uuid[], {p[1]}::int[], {p[2]}::text[], {p[3]}::text[], {p[4]}::jsonb[]) "
        "ON CONFLICT (saga_id, seq) DO UPDATE SET status = EXCLUDED.status, record = EXCLUDED.record"
    )


def _instance_update(instance: SagaInstance) -> tuple[Any, ...]:  # parameters $1..$7 of the instance UPDATE
    return (
        instance.saga_id,
        instance.status.value,
        _json(message_to_json(instance.result)),
        instance.error,
        instance.pivoted,
        instance.fencing_token,
        instance.updated_at,
    )


def _steps_columns(records: Sequence[StepRecord]) -> tuple[list[Any], ...]:  # the unnest arrays of _steps_upsert
    return (
        [record.saga_id for record in records],
        [record.seq for record in records],
        [record.kind.value for record in records],
        [record.status.value for record in records],
        [json.dumps(step_to_json(record)) for record in records],
    )


def _json(value: Any) -> str | None:  # any JSON value, or None for SQL NULL
    return None if value is None else json.dumps(value)


def _instance_row(instance: SagaInstance) -> tuple[Any, ...]:  # the column values, in _INSTANCE_COLUMNS order
    return (
        instance.saga_id,
        instance.name,
        instance.version,
        instance.status.value,
        _json(message_to_json(instance.input)),
        instance.correlation_id,
        _json(message_to_json(instance.result)),
        instance.error,
        instance.pivoted,
        instance.fencing_token,
        instance.created_at,
        instance.updated_at,
    )


def _instance(row: Any) -> SagaInstance:  # an asyncpg Record of _INSTANCE_COLUMNS
    stored_input = message_from_json(json.loads(row["input"]))
    assert stored_input is not None
    return SagaInstance(
        saga_id=row["saga_id"],
        name=row["name"],
        version=row["version"],
        status=SagaStatus(row["status"]),
        input=stored_input,
        correlation_id=row["correlation_id"],
        result=message_from_json(json.loads(row["result"])) if row["result"] else None,
        error=row["error"],
        pivoted=row["pivoted"],
        fencing_token=row["fencing_token"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
