"""How envelopes become outbox and journal rows, written as one simple query with the COMMIT (see `literals`).

A handler's transaction then costs two round trips besides its own statements' — BEGIN with the inbox row, and
the outbox and journal rows with COMMIT — however many messages it emits; one in all for a handler marked
`deferred_writes`, whose unit of work begins at its commit.
"""

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from uuid import UUID

from bus.codec import exchange_for
from bus.ports import HeaderValue, WireMessage
from bus.postgres.literals import SqlValue, literal, text_literal
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
    known: dict[SqlValue, str] = {}
    return _outbox_insert(schema, [_outbox_row(item, _jsonb(item.wire.headers), known) for item in outgoing])


def journal_insert(schema: str, entries: Sequence[tuple[Envelope, WireMessage]]) -> str:
    """An INSERT of journal rows (no parameters) that ignores messages already journaled."""
    known: dict[SqlValue, str] = {}
    rows = [
        _journal_row(envelope, _jsonb(wire.headers), text_literal(_journal_payload(envelope)) + "::jsonb", known)
        for envelope, wire in entries
    ]
    return _journal_insert(schema, rows)


def prepared_statements(schema: str) -> dict[str, str]:
    """The PREPARE of the inbox, outbox and journal inserts of `schema` by statement name, for `inbox_execute` and a
    prepared `commit_statement` on the same session: PostgreSQL then plans them once per connection instead of
    parsing and planning an INSERT at every transaction. (Prepared statements belong to the session, which pooled
    connections keep; asyncpg's pool reset does not deallocate them.)"""
    return {
        f"{schema}_strata_inbox": f"PREPARE {schema}_strata_inbox (text, uuid) AS "
        f"INSERT INTO {schema}.inbox (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        # The inbox row of a unit of work that begins at its commit: a duplicate fails the whole commit.
        f"{schema}_strata_inbox_new": f"PREPARE {schema}_strata_inbox_new (text, uuid) AS "
        f"INSERT INTO {schema}.inbox (consumer, message_id) VALUES ($1, $2)",
        f"{schema}_strata_outbox": f"PREPARE {schema}_strata_outbox "
        "(uuid, text, text, text, bytea, jsonb, text, timestamptz, text, text, text) AS "
        f"INSERT INTO {schema}.outbox ({_OUTBOX_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        f"{schema}_strata_journal": f"PREPARE {schema}_strata_journal "
        "(uuid, text, integer, uuid, uuid, uuid, integer, text, bigint, timestamptz, jsonb, jsonb) AS "
        f"INSERT INTO {schema}.journal ({_JOURNAL_COLUMNS}) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (message_id) DO NOTHING",
    }


def prepare_statements(schema: str) -> str:
    """All of `prepared_statements` as one simple query."""
    return "; ".join(prepared_statements(schema).values())


def inbox_execute(schema: str, consumer: str, message_id: UUID, *, duplicate_fails: bool = False) -> str:
    """The inbox row of a handled message through the prepared insert (see `prepare_statements`); a duplicate
    inserts nothing, or with `duplicate_fails` raises a unique violation on the inbox."""
    statement = f"{schema}_strata_inbox_new" if duplicate_fails else f"{schema}_strata_inbox"
    return f"EXECUTE {statement} ({text_literal(consumer)}, {literal(message_id)})"


def commit_statement(
    schema: str,
    *,
    deferred: Sequence[str],
    emitted: Sequence[Outgoing],
    incoming: tuple[Envelope, Mapping[str, HeaderValue]] | None,
    bodies_are_payloads: bool,
    notify: bool,
    prepared: bool = False,
) -> str:
    """The simple query that ends a unit of work: `deferred` statements, the outbox rows of `emitted`, the journal
    rows of `emitted` and of `incoming` (its envelope and wire headers), COMMIT, then NOTIFY if `notify`.

    With `bodies_are_payloads` (the codec's encoding: the body is the payload's JSON), an emitted message whose
    payload holds no secret is journaled from its body instead of being serialized again. Each message's headers are
    written once as a literal for both of its rows. With `prepared`, the rows go through the statements of
    `prepare_statements` (which the session must hold), one EXECUTE per row.
    """
    statements = list(deferred)
    known: dict[SqlValue, str] = {}
    outbox: list[str] = []
    journal: list[str] = []
    for item in emitted:
        headers = _jsonb(item.wire.headers)
        outbox.append(_outbox_row(item, headers, known))
        envelope = item.envelope
        if bodies_are_payloads and not needs_redaction(type(envelope.payload)):
            payload = text_literal(item.wire.body.decode()) + "::jsonb"
        else:
            payload = text_literal(_journal_payload(envelope)) + "::jsonb"
        journal.append(_journal_row(envelope, headers, payload, known))
    if incoming is not None:
        envelope, wire_headers = incoming
        payload = text_literal(_journal_payload(envelope)) + "::jsonb"
        journal.append(_journal_row(envelope, _jsonb(wire_headers), payload, known))
    if prepared:
        statements += [f"EXECUTE {schema}_strata_outbox {row}" for row in outbox]
        statements += [f"EXECUTE {schema}_strata_journal {row}" for row in journal]
    else:
        if outbox:
            statements.append(_outbox_insert(schema, outbox))
        if journal:
            statements.append(_journal_insert(schema, journal))
    statements.append("COMMIT")
    if notify and emitted:
        # After COMMIT, in a transaction of its own that writes nothing: a NOTIFY inside the writing transaction
        # would hold PostgreSQL's notification lock through the WAL flush and serialize every commit.
        statements.append(f"NOTIFY {notify_channel(schema)}")
    return "; ".join(statements)


def _jsonb(headers: Mapping[str, HeaderValue]) -> str:
    return text_literal(json.dumps(dict(headers))) + "::jsonb"


def _outbox_row(item: Outgoing, headers: str, known: dict[SqlValue, str]) -> str:
    wire = item.wire
    return (
        f"({text_literal(wire.message_id)}::uuid, {text_literal(item.exchange)}, {text_literal(item.routing_key)}, "
        f"{text_literal(wire.type)}, {literal(wire.body)}, {headers}, {literal(wire.correlation_id)}, "
        f"{_known(known, wire.timestamp)}, {literal(wire.app_id)}, {text_literal(wire.content_type)}, "
        f"{literal(wire.reply_to)})"
    )


_OUTBOX_COLUMNS = (
    "message_id, exchange, routing_key, type, body, headers, correlation_id, occurred_at, app_id, content_type, "
    "reply_to"
)
_JOURNAL_COLUMNS = (
    "message_id, type, version, correlation_id, causation_id, saga_id, step, producer, fencing_token, occurred_at, "
    "headers, payload"
)


def _outbox_insert(schema: str, rows: Sequence[str]) -> str:
    return f"INSERT INTO {schema}.outbox ({_OUTBOX_COLUMNS}) VALUES {', '.join(rows)}"


def _journal_payload(envelope: Envelope) -> str:
    # The journal keeps what happened, never a secret: a pool's configuration is journaled with its values masked.
    payload = envelope.payload
    return json.dumps(redacted(payload)) if needs_redaction(type(payload)) else payload.model_dump_json()


def _known(known: dict[SqlValue, str], value: SqlValue) -> str:
    # Ids and times recur in a transaction's rows (an event's correlation and cause are the incoming message's id):
    # each is rendered once. (Equal times render alike: the same instant.)
    text = known.get(value)
    if text is None:
        text = known[value] = literal(value)
    return text


def _journal_row(envelope: Envelope, headers: str, payload: str, known: dict[SqlValue, str]) -> str:
    return (
        f"({_known(known, envelope.message_id)}, {text_literal(envelope.type)}, {literal(envelope.version)}, "
        f"{_known(known, envelope.correlation_id)}, {_known(known, envelope.causation_id)}, "
        f"{_known(known, envelope.saga_id)}, {literal(envelope.step)}, {text_literal(envelope.producer)}, "
        f"{literal(envelope.fencing_token)}, {_known(known, envelope.occurred_at)}, {headers}, {payload})"
    )


def _journal_insert(schema: str, rows: Sequence[str]) -> str:
    rendered = ", ".join(rows)
    return f"INSERT INTO {schema}.journal ({_JOURNAL_COLUMNS}) VALUES {rendered} ON CONFLICT (message_id) DO NOTHING"
