"""Message bases and the envelope that carries one message with its identity and lineage."""

from datetime import UTC, datetime
from typing import ClassVar, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny

from schemas.errors import ErrorInfo
from schemas.ids import uuid7


class Message(BaseModel):
    """A typed message. Subclasses are registered with `@message(type, version)`.

    Messages are frozen and refuse unknown fields, so a typo is a schema violation rather than silently lost data.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    message_type: ClassVar[str] = ""
    message_version: ClassVar[int] = 0

    def routing_key(self) -> str:
        """The topic key it is published with: its wire type, unless a message routes by its content."""
        return self.message_type


class Command(Message):
    """An imperative request owned by exactly one service (`volume.create`)."""

    def undeliverable(self, error: ErrorInfo) -> "Event | None":
        """The event that tells the command's sender that no handler could be reached (its outbox gave up on it),
        as its handler would have said it failed; None: the bus's generic `bus.command.undeliverable` is sent."""
        return None


class Event(Message):
    """A fact in the past tense that any service may consume (`volume.created`)."""


class Envelope(BaseModel):
    """A message with its identity, time and lineage. On AMQP the metadata are properties and headers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message_id: UUID = Field(default_factory=uuid7, description="UUIDv7, time-ordered; the idempotency key.")
    type: str = Field(description="Stable dotted wire type, e.g. `volume.create`.")
    version: int = Field(ge=1, description="Schema version of the payload.")
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC), description="When it was produced.")
    correlation_id: UUID = Field(description="One user operation; every message it causes carries the same id.")
    causation_id: UUID | None = Field(default=None, description="The message that caused this one.")
    saga_id: UUID | None = Field(default=None, description="The saga that sent it, if any.")
    step: int | None = Field(default=None, ge=0, description="The saga step that sent it, if any.")
    producer: str = Field(default="", description="`service@host` of the sender.")
    fencing_token: int | None = Field(
        default=None, ge=0, description="Lock fencing token; a receiver refuses a token older than one it has seen."
    )
    payload: SerializeAsAny[Message] = Field(description="The message itself.")

    @classmethod
    def wrap(
        cls,
        payload: Message,
        *,
        cause: "Envelope | None" = None,
        correlation_id: UUID | None = None,
        message_id: UUID | None = None,
        saga_id: UUID | None = None,
        step: int | None = None,
        producer: str = "",
        fencing_token: int | None = None,
    ) -> Self:
        """Wrap a payload, inheriting correlation, saga and fencing token from the message that caused it."""
        if not payload.message_type:
            raise TypeError(f"{type(payload).__name__} is not a registered message (use @message)")
        message_uuid = message_id or uuid7()
        return cls(
            message_id=message_uuid,
            type=payload.message_type,
            version=payload.message_version,
            correlation_id=correlation_id or (cause.correlation_id if cause else message_uuid),
            causation_id=cause.message_id if cause else None,
            saga_id=saga_id if saga_id is not None else (cause.saga_id if cause else None),
            step=step if step is not None else (cause.step if cause else None),
            producer=producer,
            fencing_token=fencing_token if fencing_token is not None else (cause.fencing_token if cause else None),
            payload=payload,
        )
