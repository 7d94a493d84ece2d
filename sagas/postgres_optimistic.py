"""The coordinator's optimistic path on PostgreSQL: a saga read without a lock (or from this process's cache),
its writes deferred to the COMMIT, which checks the saga's revision (see `sagas.postgres_units`).
"""

import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from bus.postgres.literals import literal
from sagas.ports import LockResult
from sagas.postgres_literals import deferred_write
from sagas.postgres_rows import INSTANCE_COLUMNS, instance_from_row
from sagas.postgres_session import PostgresSagaSession
from sagas.postgres_units import SagaUnitOfWork
from sagas.records import SagaEvent, SagaInstance, StepRecord, Timer
from sagas.serialize import step_from_json


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
                f"SELECT {INSTANCE_COLUMNS}, revision, (SELECT coalesce(json_agg(s.record ORDER BY s.seq), "
                f"'[]'::json) FROM {self._s}.steps AS s WHERE s.saga_id = $1) AS steps "
                f"FROM {self._s}.instances WHERE saga_id = $1",
                saga_id,
            )
            if row is None:
                raise NeedsTransaction("an unknown saga")  # ignored the locking way, which also logs it
            revision, instance = int(row["revision"]), instance_from_row(row)
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
