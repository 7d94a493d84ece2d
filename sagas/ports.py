"""The saga store port: instances, the step journal, timers, leased locks and the audit trail.

Adapters: `PostgresSagaStore` (the real one; everything in schema `sagas`) and `MemorySagaStore` (tests, demo).
A session is one transaction; with a unit of work it is that unit's transaction, so that a saga's state, its
outbox rows and its inbox row commit together.
"""

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol
from uuid import UUID

from bus.ports import UnitOfWork
from sagas.records import LockHolder, SagaEvent, SagaInstance, SagaStatus, StepRecord, Timer


class LockOutcome(StrEnum):
    """How an attempt to take a set of locks ended."""

    ACQUIRED = "acquired"
    QUEUED = "queued"  # another saga holds one of them, or is ahead in line; this one now waits in line
    REFUSED = "refused"  # held by another saga and the caller does not wait


@dataclass(frozen=True, slots=True)
class LockResult:
    """What an attempt to take a set of locks found."""

    outcome: LockOutcome
    token: int | None = None
    holders: tuple[LockHolder, ...] = ()  # who holds what this saga wanted (when not acquired)


class SagaSession(Protocol):
    """One transaction on the saga tables."""

    async def insert_instance(self, instance: SagaInstance) -> bool:
        """Create the instance; False (and nothing changed) if one with its id exists."""

    async def lock_instance(self, saga_id: UUID) -> SagaInstance | None:
        """Return the instance, locked until the end of the transaction (SELECT ... FOR UPDATE); None if absent."""

    async def get_instance(self, saga_id: UUID) -> SagaInstance | None:
        """Return the instance without locking it; None if absent."""

    async def lock_saga(self, saga_id: UUID) -> tuple[SagaInstance, list[StepRecord]] | None:
        """`lock_instance` and `load_steps` in one go (one round trip where the adapter can)."""

    async def write(
        self,
        instance: SagaInstance,
        steps: Sequence[StepRecord],
        timers: Sequence[Timer],
        events: Sequence[SagaEvent],
    ) -> None:
        """`save_instance`, `save_steps`, `add_timer` and `record_event` in one go (one round trip where it can)."""

    async def save_instance(self, instance: SagaInstance) -> None:
        """Write status, result, error, pivot and fencing token of an existing instance."""

    async def load_steps(self, saga_id: UUID) -> list[StepRecord]:
        """Return the saga's journal in seq order."""

    async def save_steps(self, records: Sequence[StepRecord]) -> None:
        """Insert or replace journal entries (keyed by saga id and seq)."""

    async def add_timer(self, timer: Timer) -> None:
        """Schedule `timer`; several timers for the same step may coexist (stale ones are ignored when fired)."""

    async def claim_due_timer(self, now: datetime) -> Timer | None:
        """Take and delete the oldest timer due at `now` that no other transaction holds (SKIP LOCKED)."""

    async def acquire_locks(
        self, saga_id: UUID, resources: Sequence[str], *, lease: float, now: datetime, queue: bool
    ) -> LockResult:
        """Take every resource or none, in canonical order, behind any saga already waiting in line for them.

        A lock held by another saga whose lease expired is free. Acquiring gives a new fencing token, higher than
        any given before. With `queue`, a saga that cannot have them all now is put (or kept) in line.
        """

    async def release_locks(self, saga_id: UUID) -> list[UUID]:
        """Free the saga's locks and leave any line it was in; return the sagas waiting for those resources."""

    async def renew_locks(self, saga_id: UUID, until: datetime) -> None:
        """Extend the leases of the saga's locks to `until`."""

    async def leave_line(self, saga_id: UUID) -> None:
        """Stop waiting for locks (the deadline passed)."""

    async def list_locks(self, saga_id: UUID | None = None) -> list[LockHolder]:
        """Locks held (by one saga, or all)."""

    async def record_event(self, event: SagaEvent) -> None:
        """Append to the saga's audit trail."""

    async def list_events(self, saga_id: UUID) -> list[SagaEvent]:
        """The saga's audit trail, oldest first."""

    async def list_instances(
        self, *, status: SagaStatus | None = None, name: str | None = None, limit: int = 100
    ) -> list[SagaInstance]:
        """Newest first, optionally filtered."""


class SagaStore(Protocol):
    """Opens sessions on the saga tables."""

    def session(self, uow: UnitOfWork | None = None) -> AbstractAsyncContextManager[SagaSession]:
        """A session in `uow`'s transaction, or (without one) in a transaction of its own, committed at exit."""

    async def next_timer_at(self) -> datetime | None:
        """When the earliest timer is due (None if there is none): one cheap read, outside any transaction."""
