"""How envelopes become outbox and journal rows: one multi-row INSERT per table, built from column arrays.

A handler's transaction writes what it emitted (outbox and journal) and the message it handled (journal) in one
statement, so the whole unit of work costs a few round trips however many messages it emits.
"""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bus.ports import WireMessage
from schemas import Command, Envelope

Route = Callable[[Envelope], tuple[str, str]]
"""Where an envelope is published: (exchange short name, routing key)."""

Encode = Callable[[Envelope], WireMessage]
"""The codec's envelope-to-wire function."""


def route_by_kind(envelope: Envelope) -> tuple[str, str]:
    """Commands go to the `commands` exchange, events to `events`, each with its wire type as routing key."""
    exchange = "commands" if isinstance(envelope.payload, Command) else "events"
    return exchange, envelope.type


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An emitted envelope, encoded and routed when it was emitted (so a bad one fails inside the handler)."""

    envelope: Envelope
    wire: WireMessage
    exchange: str
    routing_key: str


def outbox_insert(schema: str) -> str:
    """The statement that writes outbox rows from column arrays (see `outbox_arrays`)."""
    return f"""
        INSERT INTO {schema}.outbox (message_id, exchange, routing_key, type, body, headers, correlation_id,
                                     occurred_at, app_id, content_type, reply_to)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::jsonb[], $7::text[],
                             $8::timestamptz[], $9::text[], $10::text[], $11::text[])"""


def journal_insert(schema: str, *, first_parameter: int = 1) -> str:
    """The statement that journals envelopes from column arrays (see `journal_arrays`); duplicates are ignored."""
    p = [f"${first_parameter + offset}" for offset in range(12)]
    return f"""
        INSERT INTO {schema}.journal (message_id, type, version, correlation_id, causation_id, saga_id, step,
                                      producer, fencing_token, occurred_at, headers, payload)
        SELECT * FROM unnest({p[0]}::uuid[], {p[1]}::text[], {p[2]}::int[], {p[3]}::uuid[], {p[4]}::uuid[],
                             {p[5]}::uuid[], {p[6]}::int[], {p[7]}::text[], {p[8]}::bigint[],
                             {p[9]}::timestamptz[], {p[10]}::jsonb[], {p[11]}::jsonb[])
        ON CONFLICT (message_id) DO NOTHING"""


def outbox_and_journal_insert(schema: str) -> str:
    """Both inserts in one statement (one round trip): outbox parameters $1..$11, journal $12..$23."""
    return f"WITH outbox_rows AS ({outbox_insert(schema)}) {journal_insert(schema, first_parameter=12)}"


# asyncpg passes column arrays as lists; their element types differ per column, hence `object`.
Columns = list[list[object]]


def outbox_arrays(outgoing: Sequence[Outgoing]) -> Columns:
    """Column arrays for `outbox_insert`, in its parameter order."""
    return [
        [item.wire.message_id for item in outgoing],
        [item.exchange for item in outgoing],
        [item.routing_key for item in outgoing],
        [item.wire.type for item in outgoing],
        [item.wire.body for item in outgoing],
        [json.dumps(dict(item.wire.headers)) for item in outgoing],
        [item.wire.correlation_id for item in outgoing],
        [item.wire.timestamp for item in outgoing],
        [item.wire.app_id for item in outgoing],
        [item.wire.content_type for item in outgoing],
        [item.wire.reply_to for item in outgoing],
    ]


def journal_arrays(entries: Sequence[tuple[Envelope, WireMessage]]) -> Columns:
    """Column arrays for `journal_insert`, in its parameter order."""
    return [
        [envelope.message_id for envelope, _ in entries],
        [envelope.type for envelope, _ in entries],
        [envelope.version for envelope, _ in entries],
        [envelope.correlation_id for envelope, _ in entries],
        [envelope.causation_id for envelope, _ in entries],
        [envelope.saga_id for envelope, _ in entries],
        [envelope.step for envelope, _ in entries],
        [envelope.producer for envelope, _ in entries],
        [envelope.fencing_token for envelope, _ in entries],
        [envelope.occurred_at for envelope, _ in entries],
        [json.dumps(dict(wire.headers)) for _, wire in entries],
        [envelope.payload.model_dump_json() for envelope, _ in entries],
    ]
