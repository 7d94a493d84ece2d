"""Requests waiting for an agent: who asked (so that the answer reaches a saga's step) and how to answer them.

The backup service hands data-plane work to an agent and answers the requester when the agent's event arrives. The
agent is sent a command without the saga's ids (its answer comes back here), with the saga's correlation id and
fencing token.
"""

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from bus.ports import UnitOfWork
from schemas import Envelope, ErrorInfo, Event, Message
from schemas.errors import StrataError, Transient
from schemas.sagas import StepFailed

PRODUCER = "backup"
Connection = Any  # the unit of work's asyncpg connection


@dataclass(frozen=True, slots=True)
class Requester:
    """The identity of the command a request answers."""

    message_id: UUID
    correlation_id: UUID
    saga_id: UUID | None = None
    step: int | None = None
    fencing_token: int | None = None

    @classmethod
    def of(cls, envelope: Envelope) -> "Requester":
        """The requester of a command as it arrived."""
        return cls(
            envelope.message_id, envelope.correlation_id, envelope.saga_id, envelope.step, envelope.fencing_token
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "message_id": str(self.message_id),
                "correlation_id": str(self.correlation_id),
                "saga_id": str(self.saga_id) if self.saga_id else None,
                "step": self.step,
                "fencing_token": self.fencing_token,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> "Requester":
        data: dict[str, Any] = json.loads(text)  # the object written by to_json
        return cls(
            UUID(data["message_id"]),
            UUID(data["correlation_id"]),
            UUID(data["saga_id"]) if data.get("saga_id") else None,
            data.get("step"),
            data.get("fencing_token"),
        )

    @property
    def from_saga(self) -> bool:
        return self.saga_id is not None and self.step is not None

    def envelope(self, payload: Message) -> Envelope:
        """`payload` in the requester's lineage: a saga's step reply when the requester was a saga step."""
        return Envelope.wrap(
            payload,
            correlation_id=self.correlation_id,
            saga_id=self.saga_id,
            step=self.step,
            producer=PRODUCER,
            fencing_token=self.fencing_token,
        ).model_copy(update={"causation_id": self.message_id})


def answer(uow: UnitOfWork, requester: Requester, event: Event) -> None:
    """Publish the outcome; for a saga step it is the step's reply."""
    uow.emit(requester.envelope(event))


def announce(uow: UnitOfWork, requester: Requester, event: Event) -> None:
    """Publish an event in the requester's lineage but outside any saga's step (state changes, failures)."""
    uow.emit(requester.envelope(event).model_copy(update={"saga_id": None, "step": None}))


def refuse(uow: UnitOfWork, requester: Requester, failed: Event, error: ErrorInfo) -> None:
    """Publish the `...Failed` event, and the step failure when a saga asked."""
    announce(uow, requester, failed)
    if requester.from_saga:
        uow.emit(requester.envelope(StepFailed(error=error)))


async def to_agent(uow: UnitOfWork, requester: Requester, command: Message, *, kind: str, backup_id: UUID) -> None:
    """Send a command to an agent on behalf of `requester`, and remember who waits for its answer."""
    envelope = Envelope.wrap(
        command, correlation_id=requester.correlation_id, producer=PRODUCER, fencing_token=requester.fencing_token
    ).model_copy(update={"causation_id": requester.message_id})
    uow.emit(envelope)
    await uow.connection.execute(
        "INSERT INTO backup.operations (agent_message_id, kind, backup_id, request) VALUES ($1, $2, $3, $4::jsonb)",
        envelope.message_id,
        kind,
        backup_id,
        requester.to_json(),
    )


async def take(uow: UnitOfWork, kind: str, backup_id: UUID, envelope: Envelope) -> list[Requester]:
    """Everyone waiting for this outcome (forgotten once taken); when nobody does, the outcome is still announced."""
    rows = await uow.connection.fetch(
        "DELETE FROM backup.operations WHERE agent_message_id = $1 OR (kind = $2 AND backup_id = $3) "
        "RETURNING request::text AS request",
        envelope.causation_id,
        kind,
        backup_id,
    )
    found = [Requester.from_json(row["request"]) for row in rows]
    return found or [Requester(envelope.causation_id or envelope.message_id, envelope.correlation_id)]


async def refusing(
    uow: UnitOfWork,
    envelope: Envelope,
    failed: Callable[[StrataError], Event],
    body: Callable[[], Awaitable[None]],
) -> None:
    """Run `body` in a savepoint; a refusal (any error but Transient) leaves nothing and answers with `failed`."""
    connection = uow.connection
    await connection.execute("SAVEPOINT refusal")
    try:
        await body()
    except Transient:
        raise
    except StrataError as error:
        await connection.execute("ROLLBACK TO SAVEPOINT refusal")
        refuse(uow, Requester.of(envelope), failed(error), error.info())
        return
    await connection.execute("RELEASE SAVEPOINT refusal")
