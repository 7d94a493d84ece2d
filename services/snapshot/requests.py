"""Requests waiting for an agent: who asked (so that the answer reaches a saga's step) and how to answer them.

The snapshot service hands the data-plane work to the agent of the volume's pool and answers the requester when
the agent's event arrives. A command from a saga is answered with the domain event carrying the saga's id and step
(or a step failure); the agent itself is sent a command without the saga's ids, so that its answer comes back
here rather than to the saga, but with the saga's correlation id and fencing token.
"""

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from bus.ports import UnitOfWork
from schemas import Envelope, ErrorInfo, Event, Message
from schemas.sagas import StepFailed
from services.snapshot.repository import Connection

PRODUCER = "snapshot"


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


def refuse(uow: UnitOfWork, requester: Requester, failed: Event, error: ErrorInfo) -> None:
    """Publish the `...Failed` event, and the step failure when a saga asked."""
    uow.emit(requester.envelope(failed).model_copy(update={"saga_id": None, "step": None}))
    if requester.from_saga:
        uow.emit(requester.envelope(StepFailed(error=error)))


def to_agent(uow: UnitOfWork, requester: Requester, command: Message) -> Envelope:
    """Send a command to an agent on behalf of `requester` (its correlation and fencing token, not its saga)."""
    envelope = Envelope.wrap(
        command, correlation_id=requester.correlation_id, producer=PRODUCER, fencing_token=requester.fencing_token
    ).model_copy(update={"causation_id": requester.message_id})
    uow.emit(envelope)
    return envelope


async def remember(
    connection: Connection, sent: Envelope, requester: Requester, *, kind: str, snapshot_id: UUID, volume_id: UUID
) -> None:
    """Keep who asked until the agent answers `sent`."""
    await connection.execute(
        "INSERT INTO snapshot.operations (agent_message_id, kind, snapshot_id, volume_id, request) "
        "VALUES ($1, $2, $3, $4, $5::jsonb)",
        sent.message_id,
        kind,
        snapshot_id,
        volume_id,
        requester.to_json(),
    )


async def take(
    connection: Connection, kind: str, snapshot_id: UUID, volume_id: UUID, causation_id: UUID | None
) -> list[Requester]:
    """Everyone waiting for this outcome (several saga attempts may wait on one snapshot); forgotten once taken.

    The agent's answer names the command it answers (causation id); answers for the same object and kind settle
    every request on it, since the plugin's calls are idempotent and the outcome is the same.
    """
    rows = await connection.fetch(
        "DELETE FROM snapshot.operations WHERE agent_message_id = $1 OR (kind = $2 AND snapshot_id = $3 "
        "AND volume_id = $4) RETURNING request::text AS request",
        causation_id,
        kind,
        snapshot_id,
        volume_id,
    )
    return [Requester.from_json(row["request"]) for row in rows]
