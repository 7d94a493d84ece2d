"""`MemorySagaStore`: the saga store in memory, for fast tests and the embedded demo.

Sessions run one at a time (one lock for the whole store stands in for row locks), and a session that raises
restores the state it found, as a rolled-back transaction would.
"""

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from uuid import UUID

from bus.ports import UnitOfWork
from sagas.ports import LockOutcome, LockResult
from sagas.records import LockHolder, SagaEvent, SagaInstance, SagaStatus, StepRecord, Timer


@dataclass
class _State:
    instances: dict[UUID, SagaInstance] = field(default_factory=dict)
    steps: dict[UUID, dict[int, StepRecord]] = field(default_factory=dict)
    timers: list[Timer] = field(default_factory=list)
    locks: dict[str, LockHolder] = field(default_factory=dict)
    line: dict[UUID, tuple[int, tuple[str, ...]]] = field(default_factory=dict)  # saga -> (position, resources)
    events: list[SagaEvent] = field(default_factory=list)
    last_token: int = 0
    last_position: int = 0
    last_timer: int = 0

    def snapshot(self) -> "_State":
        """A copy to roll back to. Shallow is enough: stored values are never changed in place, only replaced."""
        return replace(
            self,
            instances=dict(self.instances),
            steps={saga_id: dict(steps) for saga_id, steps in self.steps.items()},
            timers=list(self.timers),
            locks=dict(self.locks),
            line=dict(self.line),
            events=list(self.events),
        )


def _copy_step(record: StepRecord) -> StepRecord:
    """A copy the caller may change without touching the stored one (messages and errors are immutable)."""
    return replace(
        record,
        args=dict(record.args),
        value=dict(record.value) if record.value is not None else None,
        attempts=[replace(attempt) for attempt in record.attempts],
    )


class MemorySagaSession:
    """A session on the store's state; see `SagaSession` for what each method promises."""

    def __init__(self, state: _State) -> None:
        self._state = state

    async def insert_instance(self, instance: SagaInstance) -> bool:
        if instance.saga_id in self._state.instances:
            return False
        self._state.instances[instance.saga_id] = replace(instance)
        self._state.steps[instance.saga_id] = {}
        return True

    async def lock_instance(self, saga_id: UUID) -> SagaInstance | None:
        return await self.get_instance(saga_id)

    async def get_instance(self, saga_id: UUID) -> SagaInstance | None:
        found = self._state.instances.get(saga_id)
        return replace(found) if found else None

    async def lock_saga(self, saga_id: UUID) -> tuple[SagaInstance, list[StepRecord]] | None:
        instance = await self.lock_instance(saga_id)
        return (instance, await self.load_steps(saga_id)) if instance else None

    async def write(
        self,
        instance: SagaInstance,
        steps: Sequence[StepRecord],
        timers: Sequence[Timer],
        events: Sequence[SagaEvent],
    ) -> None:
        await self.save_instance(instance)
        await self.save_steps(steps)
        for timer in timers:
            await self.add_timer(timer)
        for event in events:
            await self.record_event(event)

    async def save_instance(self, instance: SagaInstance) -> None:
        self._state.instances[instance.saga_id] = replace(instance)

    async def load_steps(self, saga_id: UUID) -> list[StepRecord]:
        steps = self._state.steps.get(saga_id, {})
        return [_copy_step(steps[seq]) for seq in sorted(steps)]

    async def save_steps(self, records: Sequence[StepRecord]) -> None:
        for record in records:
            self._state.steps.setdefault(record.saga_id, {})[record.seq] = _copy_step(record)

    async def add_timer(self, timer: Timer) -> None:
        self._state.last_timer += 1
        self._state.timers.append(replace(timer, timer_id=self._state.last_timer))

    async def claim_due_timer(self, now: datetime) -> Timer | None:
        due = [timer for timer in self._state.timers if timer.due_at <= now]
        if not due:
            return None
        first = min(due, key=lambda timer: (timer.due_at, timer.timer_id or 0))
        self._state.timers.remove(first)
        return first

    async def acquire_locks(
        self, saga_id: UUID, resources: Sequence[str], *, lease: float, now: datetime, queue: bool
    ) -> LockResult:
        wanted = tuple(sorted(set(resources)))
        held = [
            holder
            for resource in wanted
            if (holder := self._state.locks.get(resource)) is not None
            and holder.saga_id != saga_id
            and holder.expires_at > now
        ]
        my_place = self._state.line.get(saga_id, (None, ()))[0]
        ahead = [
            other
            for other, (position, other_resources) in self._state.line.items()
            if other != saga_id and (my_place is None or position < my_place) and set(other_resources) & set(wanted)
        ]
        if not held and not ahead:
            self._state.last_token += 1
            token = self._state.last_token
            expires = now + timedelta(seconds=lease)
            for resource in wanted:
                self._state.locks[resource] = LockHolder(resource, saga_id, token, expires)
            self._state.line.pop(saga_id, None)
            return LockResult(LockOutcome.ACQUIRED, token=token)
        if not queue:
            return LockResult(LockOutcome.REFUSED, holders=tuple(held))
        if saga_id not in self._state.line:
            self._state.last_position += 1
            self._state.line[saga_id] = (self._state.last_position, wanted)
        return LockResult(LockOutcome.QUEUED, holders=tuple(held))

    async def release_locks(self, saga_id: UUID) -> list[UUID]:
        released = {resource for resource, holder in self._state.locks.items() if holder.saga_id == saga_id}
        for resource in released:
            del self._state.locks[resource]
        self._state.line.pop(saga_id, None)
        waiting = [
            (position, other) for other, (position, resources) in self._state.line.items() if set(resources) & released
        ]
        return [other for _, other in sorted(waiting)]

    async def renew_locks(self, saga_id: UUID, until: datetime) -> None:
        for resource, holder in list(self._state.locks.items()):
            if holder.saga_id == saga_id:
                self._state.locks[resource] = replace(holder, expires_at=until)

    async def leave_line(self, saga_id: UUID) -> None:
        self._state.line.pop(saga_id, None)

    async def list_locks(self, saga_id: UUID | None = None) -> list[LockHolder]:
        return sorted(
            (holder for holder in self._state.locks.values() if saga_id is None or holder.saga_id == saga_id),
            key=lambda holder: holder.resource,
        )

    async def record_event(self, event: SagaEvent) -> None:
        self._state.events.append(event)

    async def list_events(self, saga_id: UUID) -> list[SagaEvent]:
        return [event for event in self._state.events if event.saga_id == saga_id]

    async def list_instances(
        self, *, status: SagaStatus | None = None, name: str | None = None, limit: int = 100
    ) -> list[SagaInstance]:
        chosen = (
            instance
            for instance in reversed(self._state.instances.values())
            if (status is None or instance.status is status) and (name is None or instance.name == name)
        )
        return [replace(instance) for instance in itertools.islice(chosen, limit)]


class MemorySagaStore:
    """The saga store in memory; sessions run one at a time and roll back if they raise."""

    def __init__(self) -> None:
        self._state = _State()
        self._lock = asyncio.Lock()

    async def next_timer_at(self) -> datetime | None:
        """When the earliest timer is due, None if there is none."""
        return min((timer.due_at for timer in self._state.timers), default=None)

    @asynccontextmanager
    async def session(self, uow: UnitOfWork | None = None) -> AsyncIterator[MemorySagaSession]:
        """A session; the unit of work is not needed, since nothing here is in a database."""
        async with self._lock:
            before = self._state.snapshot()
            try:
                yield MemorySagaSession(self._state)
            except BaseException:
                self._state = before
                raise
