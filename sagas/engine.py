"""`SagaEngine`: what happens to a saga when a message or a timer arrives, inside the caller's transaction.

Every entry point locks the saga row, records what arrived, then advances: replay the code against the journal
until it suspends, send the steps it reached for the first time, take locks, arm timers; or, once it failed
before its pivot, compensate. The caller commits (state, outbox and inbox together) or rolls everything back.
The engine never sleeps and never talks to the network itself, so any replica can run any saga.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

import structlog

from sagas.compensation import compensate
from sagas.definition import SagaDefinition, SagaRegistry, saga_registry
from sagas.ending import finish
from sagas.locks import renew_leases, take_locks
from sagas.ports import SagaSession
from sagas.records import (
    SagaInstance,
    SagaStatus,
    StepKind,
    StepRecord,
    StepStatus,
    StoredMessage,
    Timer,
    TimerKind,
)
from sagas.replay import Outcome, replay
from sagas.settings import DEFAULT_STEP_TIMEOUT
from sagas.steps import apply_reply, cancel, on_retry, on_timeout
from sagas.work import Emit, SagaWork
from schemas import Command, Envelope, MessageRegistry, registry

log = structlog.get_logger(__name__)
_MAX_ROUNDS = 1000  # replays in one transaction; each round settles a lock or a local step, so this is ample


class SagaEngine:
    """Runs sagas of `sagas`, one message or timer at a time, in the caller's transaction."""

    def __init__(
        self,
        *,
        sagas: SagaRegistry = saga_registry,
        messages: MessageRegistry = registry,
        producer: str = "saga-coordinator",
        announce_ends: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        step_timeout: float = DEFAULT_STEP_TIMEOUT,
    ) -> None:
        self.sagas = sagas
        self.messages = messages
        self.producer = producer
        self.announce_ends = announce_ends
        self.clock = clock
        self.step_timeout = step_timeout

    async def start(
        self,
        session: SagaSession,
        emit: Emit,
        definition: SagaDefinition,
        command: Command,
        *,
        saga_id: UUID,
        correlation_id: UUID,
        cause: Envelope | None = None,
    ) -> bool:
        """Create and advance a saga; False if a saga with this id exists (a repeated start changes nothing)."""
        now = self.clock()
        instance = SagaInstance(
            saga_id=saga_id,
            name=definition.name,
            version=definition.version,
            status=SagaStatus.RUNNING,
            input=StoredMessage.of(command),
            correlation_id=correlation_id,
            created_at=now,
            updated_at=now,
        )
        if not await session.insert_instance(instance):
            return False
        work = SagaWork(session, emit, instance, {}, now, self.producer, self.messages, cause, self.step_timeout)
        work.event("started", name=definition.name, version=definition.version)
        await self._advance(work)
        await work.save()
        return True

    async def on_reply(self, session: SagaSession, emit: Emit, envelope: Envelope) -> None:
        """A participant answered step `envelope.step` of saga `envelope.saga_id`."""
        if envelope.saga_id is None or envelope.step is None:
            # Expected: the coordinator hears every event of its reply types, most of them not sent for a saga
            # (a snapshot an operator took by hand is snapshot.created too).
            log.debug("reply without saga id or step ignored", type=envelope.type)
            return
        work = await self._load(session, emit, envelope.saga_id, envelope)
        if work is None:
            return
        record = work.records.get(envelope.step)
        if record is None:
            work.event("reply ignored", seq=envelope.step, type=envelope.type, why="no such step")
        else:
            apply_reply(work, record, envelope)
        await self._advance(work)
        await work.save()

    async def on_timer(self, session: SagaSession, emit: Emit, timer: Timer) -> None:
        """A timer of the saga is due (the caller claimed and deleted it in this transaction)."""
        work = await self._load(session, emit, timer.saga_id, None)
        if work is None:
            return
        record = work.records.get(timer.seq)
        if timer.kind is TimerKind.WAKE:
            for waiting in [r for r in work.records.values() if r.kind is StepKind.LOCK]:
                if waiting.status is StepStatus.WAITING and work.instance.status is SagaStatus.RUNNING:
                    await take_locks(work, waiting)
        elif record is None:
            pass
        elif timer.kind is TimerKind.RETRY:
            on_retry(work, record, timer.attempt)
        elif timer.kind is TimerKind.TIMEOUT:
            on_timeout(work, record, timer.attempt)
        elif timer.kind is TimerKind.SLEEP and record.status is StepStatus.WAITING:
            record.status = StepStatus.SUCCEEDED
            record.finished_at = work.now
            work.touch(record)
        elif timer.kind is TimerKind.LOCK_DEADLINE and record.status is StepStatus.WAITING:
            await take_locks(work, record, deadline_passed=True)
        await self._advance(work)
        await work.save()

    async def _load(self, session: SagaSession, emit: Emit, saga_id: UUID, cause: Envelope | None) -> SagaWork | None:
        loaded = await session.lock_saga(saga_id)
        if loaded is None:
            log.warning("message for an unknown saga ignored", saga_id=str(saga_id))
            return None
        instance, steps = loaded
        if instance.status.ended:
            return None
        records = {record.seq: record for record in steps}
        now = self.clock()
        return SagaWork(session, emit, instance, records, now, self.producer, self.messages, cause, self.step_timeout)

    async def _advance(self, work: SagaWork) -> None:
        for _ in range(_MAX_ROUNDS):
            status = work.instance.status
            if status is SagaStatus.COMPENSATING:
                await compensate(work, announce=self.announce_ends)
                break
            if status is not SagaStatus.RUNNING or not await self._replay_once(work):
                break
        if not work.instance.status.ended:
            await renew_leases(work)

    async def _replay_once(self, work: SagaWork) -> bool:
        """Replay once and act on it; True if something settled that the code should see at once."""
        instance = work.instance
        definition = self.sagas.get(instance.name, instance.version)
        if definition is None:
            why = f"saga {instance.name} v{instance.version} is not registered in this coordinator"
            await finish(work, SagaStatus.STUCK, why, announce=self.announce_ends)
            return False
        result = replay(definition, instance, list(work.records.values()), now=work.now, messages=self.messages)
        for record in result.created:
            work.touch(record)
            if record.kind is StepKind.PIVOT:
                instance.pivoted = True
        if result.outcome is Outcome.SUSPENDED:
            return await self._start_new(work, result.created)
        if result.outcome is Outcome.COMPLETED:
            instance.result = StoredMessage.of(result.result) if result.result is not None else None
            await finish(work, SagaStatus.COMPLETED, announce=self.announce_ends)
            return False
        if result.outcome is Outcome.DIVERGED:
            await finish(work, SagaStatus.STUCK, result.reason, announce=self.announce_ends)
            return False
        for record in result.created:
            if record.kind in {StepKind.STEP, StepKind.QUERY} and record.status is StepStatus.SENT:
                cancel(work, record)  # reached in the pass that failed; never sent
        if instance.pivoted:
            await finish(
                work, SagaStatus.STUCK, f"failed after its pivot: {result.reason}", announce=self.announce_ends
            )
            return False
        instance.error = result.reason
        instance.status = SagaStatus.COMPENSATING
        work.event("compensating", reason=result.reason)
        return True

    async def _start_new(self, work: SagaWork, created: list[StepRecord]) -> bool:
        settled = False
        for record in created:
            if record.kind in {StepKind.STEP, StepKind.QUERY}:
                work.send(record, 1)
            elif record.kind is StepKind.LOCK:
                settled = await take_locks(work, record) or settled
            elif record.kind is StepKind.SLEEP:
                work.schedule(record, TimerKind.SLEEP, float(record.args["seconds"]))
        return settled
