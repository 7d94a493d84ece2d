"""Requests waiting for an agent, as the services that hand data-plane work to agents keep them: who asked (so that
the answer reaches a saga's step) and how to answer them.

A service hands the work to an agent and answers the requester when the agent's event arrives. A command from a saga
is answered with the domain event carrying the saga's id and step (or a step failure); the agent itself is sent a
command without the saga's ids, so that its answer comes back to the service rather than to the saga, but with the
saga's correlation id and fencing token. Each service subclasses `Requester` to name itself (`producer`) and keeps
who waits in its own table (`services/<name>/requests.py`).
"""

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Self
from uuid import UUID

from bus.ports import UnitOfWork
from schemas import Envelope, ErrorInfo, Event, Message
from schemas.errors import StrataError, Transient
from schemas.sagas import StepFailed


@dataclass(frozen=True, slots=True)
class Requester:
    """The identity of the command a request answers; `producer` names the service that answers."""

    producer: ClassVar[str] = "strata"

    message_id: UUID
    correlation_id: UUID
    saga_id: UUID | None = None
    step: int | None = None
    fencing_token: int | None = None

    @classmethod
    def of(cls, envelope: Envelope) -> Self:
        """The requester of a command as it arrived."""
        return cls(
            envelope.message_id, envelope.correlation_id, envelope.saga_id, envelope.step, envelope.fencing_token
        )

    def to_json(self) -> str:
        """The requester as kept in a service's table until the agent answers."""
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
    def from_json(cls, text: str) -> Self:
        """The requester `to_json` wrote."""
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
        """Whether a saga's step asked (its answer is the step's reply)."""
        return self.saga_id is not None and self.step is not None

    def envelope(self, payload: Message) -> Envelope:
        """`payload` in the requester's lineage: a saga's step reply when the requester was a saga step."""
        return Envelope.wrap(
            payload,
            correlation_id=self.correlation_id,
            saga_id=self.saga_id,
            step=self.step,
            producer=self.producer,
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


def to_agent(uow: UnitOfWork, requester: Requester, command: Message) -> Envelope:
    """Send a command to an agent on behalf of `requester` (its correlation and fencing token, not its saga)."""
    envelope = Envelope.wrap(
        command,
        correlation_id=requester.correlation_id,
        producer=requester.producer,
        fencing_token=requester.fencing_token,
    ).model_copy(update={"causation_id": requester.message_id})
    uow.emit(envelope)
    return envelope


async def refusing(
    uow: UnitOfWork,
    envelope: Envelope,
    failed: Callable[[StrataError], Event],
    body: Callable[[], Awaitable[Message | None]],
    *,
    requester: type[Requester],
) -> Message | None:
    """Run `body` in a savepoint; a refusal (any error but Transient) leaves nothing and answers with `failed`.

    The unit of work has begun its transaction by hand, so the savepoint is plain SQL too.
    """
    connection = uow.connection
    await connection.execute("SAVEPOINT refusal")
    try:
        result = await body()
    except Transient:
        raise
    except StrataError as error:
        await connection.execute("ROLLBACK TO SAVEPOINT refusal")
        event = failed(error)
        refuse(uow, requester.of(envelope), event, error.info())
        return event
    await connection.execute("RELEASE SAVEPOINT refusal")
    return result
