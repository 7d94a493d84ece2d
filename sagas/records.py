"""What the saga engine persists: the instance row, the step journal and the timers, as plain records.

Stores (memory, PostgreSQL) keep these; the engine reads and rewrites them inside one transaction per message.
Messages are stored as (wire type, version, JSON) so that old journals decode through the registry's upcasters.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from schemas import ErrorInfo, InvalidArgument, Message, MessageRegistry
from schemas.redact import needs_redaction

# JSON objects as stored; the registry validates them into models when the saga replays.
JsonObject = dict[str, Any]


class SagaStatus(StrEnum):
    """The life of a saga instance; COMPLETED, COMPENSATED and FAILED are ends, STUCK waits for an operator."""

    RUNNING = "RUNNING"
    COMPENSATING = "COMPENSATING"
    COMPLETED = "COMPLETED"
    COMPENSATED = "COMPENSATED"
    FAILED = "FAILED"  # a compensation could not finish; the error says what is left to clean up
    STUCK = "STUCK"  # needs an operator: forward recovery ran out, or the replay diverged from the journal

    @property
    def ended(self) -> bool:
        """Whether nothing more will happen to the saga (it is not STUCK, which an operator may resume)."""
        return self in {SagaStatus.COMPLETED, SagaStatus.COMPENSATED, SagaStatus.FAILED}


class StepKind(StrEnum):
    """What a journal entry records: a saga context operation, or a compensation."""

    STEP = "step"
    QUERY = "query"
    COMPENSATION = "compensation"
    LOCK = "lock"
    SLEEP = "sleep"
    NOW = "now"
    UUID = "uuid"
    PIVOT = "pivot"


class StepStatus(StrEnum):
    """Where a journal entry stands."""

    SENT = "SENT"  # the command is in the outbox; waiting for the reply or the timeout
    PROBING = "PROBING"  # timed out; the probe is out, its reply decides between success and retry
    BACKING_OFF = "BACKING_OFF"  # failed with a retryable error; a timer sends the next attempt
    WAITING = "WAITING"  # a lock in line, or a sleep
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"  # a retry that compensation made pointless

    @property
    def settled(self) -> bool:
        """Whether the entry has its final outcome."""
        return self in {StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.CANCELLED}


class TimerKind(StrEnum):
    """Why a timer was set."""

    RETRY = "retry"  # send the next attempt of a step
    TIMEOUT = "timeout"  # a step's attempt (or its probe) got no reply in time
    SLEEP = "sleep"  # ctx.sleep ends
    LOCK_DEADLINE = "lock_deadline"  # a saga waiting in line for a lock gives up
    WAKE = "wake"  # look at the saga again now (a lock was released, an operator acted)


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as the journal keeps it."""

    type: str
    version: int
    payload: JsonObject

    @classmethod
    def of(cls, message: Message) -> "StoredMessage":
        """Keep `message` as (type, version, JSON); a message with secret fields is refused (InvalidArgument).

        The journal outlives the saga and is shown by `strata saga show`: it must never hold a secret. A saga
        names what holds the secret (a pool id) and lets the service that owns it read it.
        """
        if needs_redaction(type(message)):
            raise InvalidArgument(
                f"{message.message_type} has secret fields, which a saga journal never keeps; "
                "send a reference to the secret instead",
                field="payload",
            )
        return cls(message.message_type, message.message_version, message.model_dump(mode="json"))

    def decode(self, messages: MessageRegistry) -> Message:
        """The message as the current code's model (older versions are upcast)."""
        return messages.decode(self.type, self.version, json.dumps(self.payload))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a step is retried: `attempts` in all, waiting `backoff` s, times `multiplier` each time, at most `max`."""

    attempts: int = 3
    backoff: float = 0.5
    multiplier: float = 2.0
    max_backoff: float = 60.0
    retry_on: tuple[str, ...] = ("TRANSIENT",)  # error codes worth another attempt

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff < 0 or self.multiplier < 1 or self.max_backoff < 0:
            raise ValueError("a retry policy needs attempts >= 1, backoff >= 0, multiplier >= 1, max_backoff >= 0")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after attempt number `attempt` (1, 2, ...) failed."""
        return float(min(self.backoff * self.multiplier ** max(attempt - 1, 0), self.max_backoff))

    def retries(self, error: ErrorInfo, attempt: int) -> bool:
        """Whether attempt number `attempt` failing with `error` deserves another attempt."""
        return attempt < self.attempts and error.code in self.retry_on

    def to_json(self) -> JsonObject:
        """The policy as JSON (kept in the journal entry)."""
        return {
            "attempts": self.attempts,
            "backoff": self.backoff,
            "multiplier": self.multiplier,
            "max_backoff": self.max_backoff,
            "retry_on": list(self.retry_on),
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> "RetryPolicy":
        """The policy that `to_json` wrote."""
        return cls(
            attempts=int(data["attempts"]),
            backoff=float(data["backoff"]),
            multiplier=float(data["multiplier"]),
            max_backoff=float(data["max_backoff"]),
            retry_on=tuple(data["retry_on"]),
        )


@dataclass(slots=True)
class Attempt:
    """One try of a step, for the timeline."""

    number: int
    sent_at: datetime
    outcome: str = ""  # "succeeded", an error code, "timed out", "probe: done", ...
    ended_at: datetime | None = None

    def to_json(self) -> JsonObject:
        """The attempt as JSON."""
        return {
            "number": self.number,
            "sent_at": self.sent_at.isoformat(),
            "outcome": self.outcome,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
        }

    @classmethod
    def from_json(cls, data: JsonObject) -> "Attempt":
        """The attempt that `to_json` wrote."""
        ended = data.get("ended_at")
        return cls(
            number=int(data["number"]),
            sent_at=datetime.fromisoformat(data["sent_at"]),
            outcome=str(data.get("outcome", "")),
            ended_at=datetime.fromisoformat(ended) if ended else None,
        )


@dataclass(slots=True)
class StepRecord:
    """One entry of a saga's journal: an operation of the saga code at position `seq`, and its outcome."""

    saga_id: UUID
    seq: int
    kind: StepKind
    status: StepStatus
    command: StoredMessage | None = None  # step, query, compensation
    compensate: StoredMessage | None = None
    probe: StoredMessage | None = None
    compensates: int | None = None  # for a compensation: the seq of the step it undoes
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None
    args: JsonObject = field(default_factory=dict)  # lock resources and wait, sleep seconds
    attempt: int = 0
    result: StoredMessage | None = None
    value: JsonObject | None = None  # results of now, uuid, lock and pivot
    error: ErrorInfo | None = None
    attempts: list[Attempt] = field(default_factory=list)
    created_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(slots=True)
class SagaInstance:
    """One run of a saga, pinned to the (name, version) it started with."""

    saga_id: UUID
    name: str
    version: int
    status: SagaStatus
    input: StoredMessage
    correlation_id: UUID
    result: StoredMessage | None = None
    error: str | None = None
    pivoted: bool = False
    fencing_token: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Timer:
    """Something to do for a saga at `due_at`: kept in the store, so a restart loses nothing."""

    saga_id: UUID
    seq: int
    kind: TimerKind
    attempt: int
    due_at: datetime
    timer_id: int | None = None


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds a resource lock, with which fencing token, until when."""

    resource: str
    saga_id: UUID
    token: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class SagaEvent:
    """An entry of a saga's audit trail: state changes and every operator action."""

    saga_id: UUID
    at: datetime
    kind: str
    detail: JsonObject
