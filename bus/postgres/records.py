"""How envelopes become outbox and journal rows, written as one simple query with the COMMIT (see `literals`).

A handler's transaction then costs three round trips besides its own statements' — BEGIN with the inbox row, and
the outbox and journal rows with COMMIT — however many messages it emits.
"""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bus.codec import exchange_for
from bus.ports import WireMessage
from bus.postgres.literals import literal, text_literal, values_rows
from schemas import Envelope
from schemas.redact import needs_redaction, redacted

Route = Callable[[Envelope], tuple[str, str]]
"""Where an envelope is published: (exchange short name, routing key)."""

Encode = Callable[[Envelope], WireMessage]
"""The codec's envelope-to-wire function."""


def route_by_kind(envelope: Envelope) -> tuple[str, str]:
    """Where the Bus facade publishes it too: commands to `commands`, events to `events`, keyed by the payload's
    `routing_key()` (its wire type, or the agent's host or cluster for agent commands)."""
    return exchange_for(envelope), envelope.payload.routing_key()


def notify_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel that says new outbox rows were committed in `schema` (validated by the caller)."""
    return f"{schema}_outbox"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An emitted envelope, encoded and routed when it was emitted (so a bad one fails inside the handler)."""

    envelope: Envelope
    wire: WireMessage
    exchange: str
    routing_key: str


def outbox_insert(schema: str, outgoing: Sequence[Outgoing]) -> str:
    """An INSERT of outbox rows (no parameters); `schema` must be validated by the caller."""
    rows = [
        (
            text_literal(item.wire.message_id) + "::uuid",
            literal(item.exchange),
            literal(item.routing_key),
            literal(item.wire.type),
            literal(item.wire.body),
            text_literal(json.dumps(dict(item.wire.headers))) + "::jsonb",
            literal(item.wire.correlation_id),
            literal(item.wire.timestamp),
            literal(item.wire.app_id),
            literal(item.wire.content_type),
            literal(item.wire.reply_to),
        )
        for item in outgoing
    ]
    return (
        f"INSERT INTO {schema}.outbox (message_id, exchange, routing_key, type, body, headers, correlation_id, "
        f"occurred_at, app_id, content_type, reply_to) VALUES {values_rows(rows)}"
    )


def _journal_payload(envelope: Envelope) -> str:
    # The journal keeps what happened, never a secret: a pool's configuration is journaled with its values masked.
    payload = envelope.payload
    return json.dumps(redacted(payload)) if needs_redaction(type(payload)) else payload.model_dump_json()


def journal_insert(schema: str, entries: Sequence[tuple[Envelope, WireMessage]]) -> str:
    """An INSERT of journal rows (no parameters) that ignores messages already journaled."""
    rows = [
        (
            literal(envelope.message_id),
            literal(envelope.type),
            literal(envelope.version),
            literal(envelope.correlation_id),
            literal(envelope.causation_id),
            literal(envelope.saga_id),
            literal(envelope.step),
            literal(envelope.producer),
            literal(envelope.fencing_token),
            literal(envelope.occurred_at),
            text_literal(json.dumps(dict(wire.headers))) + "::jsonb",
            text_literal(_journal_payload(envelope)) + "::jsonb",
        )
        for envelope, wire in entries
    ]
    return (
        f"INSERT INTO {schema}.journal (message_id, type, version, correlation_id, causation_id, saga_id, step, "
        f"producer, fencing_token, occurred_at, headers, payload) VALUES {values_rows(rows)} "
        "ON CONFLICT (message_id) DO NOTHING"
    )
