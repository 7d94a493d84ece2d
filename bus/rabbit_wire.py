"""WireMessage <-> AMQP basic properties."""

from datetime import UTC, datetime

from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from bus.ports import HeaderValue, WireMessage

PERSISTENT = 2


def properties_of(message: WireMessage, *, extra_headers: dict[str, HeaderValue] | None = None) -> Basic.Properties:
    """The AMQP properties of a message: persistent, with its identity, type, lineage and headers."""
    headers = dict(message.headers)
    if extra_headers:
        headers.update(extra_headers)
    return Basic.Properties(
        content_type=message.content_type,
        delivery_mode=PERSISTENT,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        message_type=message.type,
        timestamp=message.timestamp,
        app_id=message.app_id,
        reply_to=message.reply_to,
        headers=headers,  # type: ignore[arg-type]  # pamqp's FieldTable is invariant; our values are a subset
    )


def wire_of(delivered: DeliveredMessage) -> WireMessage:
    """A received AMQP message as a WireMessage; headers that are not scalars (x-death) are left out."""
    properties = delivered.header.properties
    headers: dict[str, HeaderValue] = {}
    for key, value in (properties.headers or {}).items():
        if value is None or isinstance(value, str | int | float | bool):
            headers[key] = value
        elif isinstance(value, bytes):
            headers[key] = value.decode(errors="replace")
        elif isinstance(value, datetime):
            headers[key] = value.isoformat()
    timestamp = properties.timestamp
    if timestamp is not None and timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    return WireMessage(
        body=delivered.body,
        message_id=properties.message_id or "",
        type=properties.message_type or "",
        headers=headers,
        correlation_id=properties.correlation_id,
        timestamp=timestamp,
        app_id=properties.app_id,
        content_type=properties.content_type or "",
        reply_to=properties.reply_to,
    )
