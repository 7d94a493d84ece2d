"""`SagaWork`: one saga inside one transaction: what was loaded, what changed, and how commands leave.

Every handler of the engine builds one, changes records through it, and saves it once at the end, so a message
costs a fixed handful of statements whatever it changes. Commands go to the unit of work's outbox; their
message ids derive from (saga id, step, attempt), so a participant can use them as idempotency keys and a
re-sent attempt is recognisably the same message.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid5

from sagas.ports import SagaSession
from sagas.records import (
    Attempt,
    SagaEvent,
    SagaInstance,
    StepRecord,
    StepStatus,
    StoredMessage,
    Timer,
    TimerKind,
)
from sagas.settings import DEFAULT_STEP_TIMEOUT
from schemas import Envelope, MessageRegistry

Emit = Callable[[Envelope], None]
"""Where commands and events go: the unit of work's `emit` (the outbox, written in the same transaction)."""

_SAGA_IDS = UUID("6f1d5c1e-3b0a-4d7e-9c59-2f7d3e9a4b10")  # namespace of saga ids derived from start commands


def saga_id_for(start_message_id: UUID) -> UUID:
    """The saga that a start command creates: the same command delivered twice starts one saga."""
    return uuid5(_SAGA_IDS, str(start_message_id))


def command_id(saga_id: UUID, seq: int, attempt: int) -> UUID:
    """The message id of attempt `attempt` of step `seq`: the participant's idempotency key."""
    return uuid5(saga_id, f"step/{seq}/attempt/{attempt}")


def probe_id(saga_id: UUID, seq: int, attempt: int) -> UUID:
    """The message id of the probe sent after attempt `attempt` of step `seq` timed out."""
    return uuid5(saga_id, f"probe/{seq}/attempt/{attempt}")


@dataclass
class SagaWork:
    """A saga loaded in a transaction, with the changes to write back."""

    session: SagaSession
    emit: Emit
    instance: SagaInstance
    records: dict[int, StepRecord]
    now: datetime
    producer: str
    messages: MessageRegistry
    cause: Envelope | None = None
    step_timeout: float = DEFAULT_STEP_TIMEOUT  # for a step that names none (recorded in it when first sent)
    dirty: set[int] = field(default_factory=set)
    timers: list[Timer] = field(default_factory=list)
    events: list[SagaEvent] = field(default_factory=list)

    @property
    def saga_id(self) -> UUID:
        """The saga being worked on."""
        return self.instance.saga_id

    def touch(self, record: StepRecord) -> None:
        """Mark a record to be written back (adding it to the journal if new)."""
        self.records[record.seq] = record
        self.dirty.add(record.seq)

    def next_seq(self) -> int:
        """The journal position after the last one (for compensations, which the code does not reach)."""
        return max(self.records, default=0) + 1

    def event(self, kind: str, **detail: Any) -> None:  # details are JSON values of any kind
        """Append to the audit trail (written at save)."""
        self.events.append(SagaEvent(self.saga_id, self.now, kind, detail))

    def schedule(self, record: StepRecord | None, kind: TimerKind, delay: float, attempt: int = 0) -> None:
        """Add a timer `delay` s from now for `record` (or the whole saga)."""
        seq = record.seq if record is not None else 0
        self.timers.append(Timer(self.saga_id, seq, kind, attempt, self.now + timedelta(seconds=delay)))

    def send(self, record: StepRecord, attempt: int) -> None:
        """Send attempt `attempt` of a step (or query, or compensation) and arm its timeout."""
        assert record.command is not None
        record.attempt = attempt
        record.status = StepStatus.SENT
        record.attempts.append(Attempt(attempt, self.now))
        if record.timeout is None:
            record.timeout = self.step_timeout  # every wait has a deadline: one that reaches nobody ends
        self._emit_command(record.command, command_id(self.saga_id, record.seq, attempt), record.seq)
        self.schedule(record, TimerKind.TIMEOUT, record.timeout, attempt)
        self.touch(record)

    def send_probe(self, record: StepRecord) -> None:
        """Ask whether the effect of the timed-out attempt happened; its reply decides, or its own timeout."""
        assert record.probe is not None
        record.status = StepStatus.PROBING
        self._emit_command(record.probe, probe_id(self.saga_id, record.seq, record.attempt), record.seq)
        self.schedule(record, TimerKind.TIMEOUT, record.timeout or self.step_timeout, record.attempt)
        self.touch(record)

    def emit_event(self, payload: StoredMessage) -> None:
        """Publish an event of the saga itself (e.g. that it ended), in the same transaction."""
        self.emit(
            Envelope.wrap(
                payload.decode(self.messages),
                correlation_id=self.instance.correlation_id,
                saga_id=self.saga_id,
                producer=self.producer,
                cause=self.cause,
            )
        )

    def _emit_command(self, command: StoredMessage, message_id: UUID, seq: int) -> None:
        self.emit(
            Envelope(
                message_id=message_id,
                type=command.type,
                version=command.version,
                occurred_at=self.now,
                correlation_id=self.instance.correlation_id,
                causation_id=self.cause.message_id if self.cause else None,
                saga_id=self.saga_id,
                step=seq,
                producer=self.producer,
                fencing_token=self.instance.fencing_token,
                payload=command.decode(self.messages),
            )
        )

    async def save(self) -> None:
        """Write the changed records, the instance, the new timers and events."""
        self.instance.updated_at = self.now
        steps = [self.records[seq] for seq in sorted(self.dirty)]
        await self.session.write(self.instance, steps, self.timers, self.events)
