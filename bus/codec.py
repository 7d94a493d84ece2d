"""Envelope <-> WireMessage. The body is the payload's JSON; the envelope's metadata ride as properties and headers.

AMQP properties: message_id, type, correlation_id, timestamp, app_id (the producer), content_type.
Headers: `version`, `occurred_at` (ISO, full precision), and where set `causation_id`, `saga_id`, `step`,
`fencing_token`.
"""

import json
from datetime import datetime
from uuid import UUID

from pydantic import ValidationError

from bus.ports import HeaderValue, WireMessage
from schemas import Command, Envelope, MessageRegistry, registry
from schemas.registry import MalformedMessage, SchemaViolation

CONTENT_TYPE = "application/json"


def exchange_for(envelope: Envelope) -> str:
    """The exchange a message goes to: commands to `commands`, everything else (events) to `events`."""
    return "commands" if isinstance(envelope.payload, Command) else "events"


def headers_of(envelope: Envelope) -> dict[str, HeaderValue]:
    """The AMQP headers `encode` gives an envelope (its version, time and lineage), without encoding the payload."""
    headers: dict[str, HeaderValue] = {
        "version": envelope.version,
        "occurred_at": envelope.occurred_at.isoformat(),
    }
    if envelope.causation_id is not None:
        headers["causation_id"] = str(envelope.causation_id)
    if envelope.saga_id is not None:
        headers["saga_id"] = str(envelope.saga_id)
    if envelope.step is not None:
        headers["step"] = envelope.step
    if envelope.fencing_token is not None:
        headers["fencing_token"] = envelope.fencing_token
    return headers


def encode(envelope: Envelope) -> WireMessage:
    """Turn an envelope into what a transport carries."""
    return WireMessage(
        body=envelope.payload.model_dump_json().encode(),
        message_id=str(envelope.message_id),
        type=envelope.type,
        headers=headers_of(envelope),
        correlation_id=str(envelope.correlation_id),
        timestamp=envelope.occurred_at,
        app_id=envelope.producer or None,
        content_type=CONTENT_TYPE,
    )


def decode(wire: WireMessage, messages: MessageRegistry = registry) -> Envelope:
    """Validate a received message into an envelope.

    Raises:
        MalformedMessage: the body is not JSON, or the envelope's properties are missing or invalid.
        UnknownMessageType: no model for the type and version.
        SchemaViolation: the body does not match the model.
    """
    if not wire.type:
        raise MalformedMessage("message has no type property", field="type")
    version = wire.headers.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise MalformedMessage("message has no integer `version` header", field="version")
    try:
        payload = messages.decode(wire.type, version, wire.body)
    except SchemaViolation:
        # The registry reports bad JSON as a violation of the schema; a body that is not JSON at all is malformed.
        _require_json(wire)
        raise
    headers = wire.headers
    try:
        return Envelope(
            message_id=UUID(wire.message_id),
            type=wire.type,
            version=version,
            occurred_at=_occurred_at(wire),
            correlation_id=UUID(wire.correlation_id) if wire.correlation_id else UUID(wire.message_id),
            causation_id=_uuid_or_none(headers.get("causation_id")),
            saga_id=_uuid_or_none(headers.get("saga_id")),
            step=_int_or_none(headers.get("step")),
            producer=wire.app_id or "",
            fencing_token=_int_or_none(headers.get("fencing_token")),
            payload=payload,
        )
    except (ValueError, TypeError, ValidationError) as error:
        raise MalformedMessage(f"envelope of {wire.type} is invalid: {_short(error)}") from None


def _require_json(wire: WireMessage) -> None:
    try:
        json.loads(wire.body)
    except ValueError as error:
        raise MalformedMessage(f"body of {wire.type} is not JSON: {error}") from None


def _occurred_at(wire: WireMessage) -> datetime:
    text = wire.headers.get("occurred_at")
    if isinstance(text, str):
        return datetime.fromisoformat(text)
    if wire.timestamp is not None:
        return wire.timestamp
    raise ValueError("no occurred_at header and no timestamp")


def _uuid_or_none(value: HeaderValue) -> UUID | None:
    return None if value is None else UUID(str(value))


def _int_or_none(value: HeaderValue) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer header, got {type(value).__name__}")
    return value


def _short(error: Exception) -> str:
    # Validation errors name the location and the problem only; never echo input values into a dead letter.
    if isinstance(error, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors())
    return type(error).__name__
