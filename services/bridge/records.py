"""The bridge's tables (schema `bridge`): operations (its inbox), events received, reports, transitions, answers.

Every function takes the connection of an open transaction (`Any`: asyncpg's, as the services' repositories do).
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from bus.postgres.literals import literal, values_rows
from schemas.cloudstack import ActionEvent

_LOCK_SPACE = 0x62726964  # "brid": the advisory locks of operation keys, apart from other users' locks


@dataclass(frozen=True)
class Received:
    """One message received from CloudStack, as `bridge events` lists it."""

    routing_key: str
    outcome: str
    category: str | None = None
    event: str | None = None
    status: str | None = None
    entity: str | None = None
    entity_uuid: UUID | None = None
    occurred_at: datetime | None = None
    operation_key: str | None = None
    correlation_id: UUID | None = None
    cloudstack_failed: bool = False
    detail: str | None = None


_INSERT_EVENT = (
    "INSERT INTO bridge.events (routing_key, category, event, status, entity, entity_uuid, occurred_at,"
    " operation_key, outcome, correlation_id, cloudstack_failed, detail)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::boolean, $12)"
)


def _event_values(received: Received, failed: object) -> tuple[Any, ...]:  # Any: the columns' values
    return (
        received.routing_key[:1024],
        received.category,
        received.event,
        received.status,
        received.entity,
        received.entity_uuid,
        received.occurred_at,
        received.operation_key,
        received.outcome,
        received.correlation_id,
        failed,
        (received.detail or "")[:2000] or None,
    )


async def record(connection: Any, received: Received) -> int:
    """Record a message received and what the bridge made of it; return its sequence number."""
    values = _event_values(received, received.cloudstack_failed)
    seq: int = await connection.fetchval(f"{_INSERT_EVENT} RETURNING seq", *values)
    return seq


def events_insert(received: list[Received]) -> str:
    """The INSERT of a batch's records as one statement of literals, for the unit of work to run in its commit's
    round trip (the bridge's hot path: nothing reads them back in the transaction)."""
    known: dict[Any, str] = {}  # a batch's records share most values (type, status, outcome): each rendered once

    def rendered(value: Any) -> str:  # Any: a column's value
        text = known.get(value)
        if text is None:
            text = known[value] = literal(value)
        return text

    rows = [
        [rendered(value) for value in _event_values(each, "true" if each.cloudstack_failed else "false")]
        for each in received
    ]
    for row in rows:
        row[10] += "::boolean"
    return (
        "INSERT INTO bridge.events (routing_key, category, event, status, entity, entity_uuid, occurred_at,"
        f" operation_key, outcome, correlation_id, cloudstack_failed, detail) VALUES {values_rows(rows)}"
    )


async def set_outcome(connection: Any, seq: int, outcome: str, detail: str | None) -> None:
    """Say what reconciling a recorded report found."""
    await connection.execute(
        "UPDATE bridge.events SET outcome = $2, detail = $3 WHERE seq = $1", seq, outcome, (detail or "")[:2000] or None
    )


async def lock_operation(connection: Any, base_key: str) -> None:
    """Serialise the messages of one operation (the consumer takes several messages at once)."""
    await connection.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _LOCK_SPACE, base_key)


@dataclass(frozen=True)
class Operation:
    """The latest operation of a base key."""

    operation_key: str
    generation: int
    outcome: str | None
    settled_at: datetime | None
    correlation_id: UUID | None
    command_type: str | None
    cloudstack_failed: bool | None


async def latest_operation(connection: Any, base_key: str) -> Operation | None:
    """The newest operation of `base_key`, if CloudStack ever asked for one."""
    return (await latest_operations(connection, [base_key])).get(base_key)


async def latest_operations(connection: Any, base_keys: list[str]) -> dict[str, Operation]:
    """The newest operation of each base key CloudStack ever asked for (one round trip for a batch)."""
    rows = await connection.fetch(
        "SELECT DISTINCT ON (base_key) base_key, operation_key, generation, outcome, settled_at, correlation_id,"
        " command_type, cloudstack_failed FROM bridge.operations WHERE base_key = ANY($1::text[])"
        " ORDER BY base_key, generation DESC",
        base_keys,
    )
    return {row["base_key"]: Operation(**{k: v for k, v in dict(row).items() if k != "base_key"}) for row in rows}


def is_duplicate(latest: Operation | None, requested_at: datetime) -> bool:
    """A request is a duplicate of the latest operation if that one is still open, or settled after the request was
    made (a late redelivery of its Scheduled or Started); only a request newer than the settlement is a new one."""
    if latest is None:
        return False
    if latest.outcome is None or latest.settled_at is None:
        return True
    return requested_at <= latest.settled_at


def correlation_of(operation_key: str) -> UUID:
    """The message id of an operation's command: derived from its key (the same in SQL: `md5(key)::uuid`), so that
    a request that lost the race to open it names the command the winner sent."""
    return UUID(hashlib.md5(operation_key.encode()).hexdigest())  # noqa: S324  # an id, not a secret


@dataclass(frozen=True)
class Asked:
    """A request of the batch for an operation: what CloudStack asked for, the command strata sends (if any)."""

    order: int
    base_key: str
    request: ActionEvent
    entity: str
    entity_uuid: UUID
    command_type: str | None
    may_open: bool = True
    """False for a request whose command was not built (it looked a duplicate): it never opens an operation."""


@dataclass(frozen=True)
class Opened:
    """The request of the batch that opens its base key's next operation; `inserted` False: a concurrent
    transaction opened it first (the unique key waited for its commit), so the request is a duplicate of it."""

    order: int
    operation_key: str
    generation: int
    inserted: bool

    @property
    def correlation_id(self) -> UUID:
        """Its command's message id."""
        return correlation_of(self.operation_key)


_OPEN = """
WITH asked AS (
    SELECT * FROM unnest($1::int[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::uuid[], $7::text[],
        $8::text[], $9::boolean[]) AS a(ord, base_key, requested_at, event, entity, entity_uuid, request, command_type,
        may_open)
), latest AS (
    SELECT DISTINCT ON (o.base_key) o.base_key, o.operation_key, o.generation, o.outcome, o.settled_at,
        o.correlation_id, o.command_type, o.cloudstack_failed
    FROM bridge.operations o WHERE o.base_key = ANY($2::text[]) ORDER BY o.base_key, o.generation DESC
), opener AS (
    SELECT DISTINCT ON (a.base_key) a.*, coalesce(l.generation, 0) + 1 AS generation
    FROM asked a LEFT JOIN latest l ON l.base_key = a.base_key
    WHERE a.may_open AND (l.base_key IS NULL OR (l.outcome IS NOT NULL AND l.settled_at IS NOT NULL
        AND a.requested_at > l.settled_at))
    ORDER BY a.base_key, a.ord
), fresh AS (
    INSERT INTO bridge.operations (operation_key, base_key, generation, event, entity, entity_uuid, request,
        command_type, correlation_id, requested_at)
    SELECT base_key || '#' || generation, base_key, generation, event, entity, entity_uuid, request::jsonb,
        command_type, CASE WHEN command_type IS NULL THEN NULL ELSE md5(base_key || '#' || generation)::uuid END,
        requested_at
    FROM opener
    ON CONFLICT DO NOTHING RETURNING base_key
)
SELECT 'opened' AS kind, o.base_key, o.ord, o.base_key || '#' || o.generation AS operation_key, o.generation,
    NULL AS outcome, NULL::timestamptz AS settled_at, NULL::uuid AS correlation_id, NULL AS command_type,
    NULL::boolean AS cloudstack_failed, f.base_key IS NOT NULL AS inserted
FROM opener o LEFT JOIN fresh f ON f.base_key = o.base_key
UNION ALL
SELECT 'latest', base_key, NULL, operation_key, generation, outcome, settled_at, correlation_id, command_type,
    cloudstack_failed, NULL
FROM latest
"""


async def open_operations(connection: Any, asked: list[Asked]) -> tuple[dict[str, Operation], dict[str, Opened]]:
    """In one statement: the latest operation of each base key asked for, and, for each key, the first request (in
    the batch's order) that opens its next operation, recorded now (the rule of `is_duplicate`, applied in SQL)."""
    if not asked:
        return {}, {}
    contexts = [
        json.dumps(
            {
                "user": str(each.request.user) if each.request.user else None,
                "account": str(each.request.account) if each.request.account else None,
                "entities": {name: str(value) for name, value in each.request.entities.items()},
            }
        )
        for each in asked
    ]
    rows = await connection.fetch(
        _OPEN,
        [each.order for each in asked],
        [each.base_key for each in asked],
        [each.request.occurred_at for each in asked],
        [each.request.event for each in asked],
        [each.entity for each in asked],
        [each.entity_uuid for each in asked],
        contexts,
        [each.command_type for each in asked],
        [each.may_open for each in asked],
    )
    latest: dict[str, Operation] = {}
    opened: dict[str, Opened] = {}
    for row in rows:
        if row["kind"] == "opened":
            opened[row["base_key"]] = Opened(row["ord"], row["operation_key"], row["generation"], row["inserted"])
        else:
            latest[row["base_key"]] = Operation(
                row["operation_key"],
                row["generation"],
                row["outcome"],
                row["settled_at"],
                row["correlation_id"],
                row["command_type"],
                row["cloudstack_failed"],
            )
    return latest, opened


async def note_cloudstack_report(connection: Any, operation_key: str, *, failed: bool) -> None:
    """Keep what CloudStack's own Completed said about an operation strata runs."""
    await connection.execute(
        "UPDATE bridge.operations SET cloudstack_failed = $2 WHERE operation_key = $1", operation_key, failed
    )


@dataclass(frozen=True)
class OpenOperation:
    """An operation strata works on, waiting for its outcome."""

    operation_key: str
    event: str
    entity: str
    entity_uuid: UUID
    request: dict[str, Any]  # Any: the JSON of the request's user, account and entities


async def open_operations_of(connection: Any, entity_uuid: UUID, events: list[str]) -> list[OpenOperation]:
    """The open operations on `entity_uuid` of the event types `events`, locked for settling."""
    rows = await connection.fetch(
        "SELECT operation_key, event, entity, entity_uuid, request FROM bridge.operations"
        " WHERE entity_uuid = $1 AND outcome IS NULL AND event = ANY($2::text[]) ORDER BY opened_at FOR UPDATE",
        entity_uuid,
        events,
    )
    return [
        OpenOperation(row["operation_key"], row["event"], row["entity"], row["entity_uuid"], json.loads(row["request"]))
        for row in rows
    ]


async def settle_operation(
    connection: Any, operation_key: str, *, succeeded: bool, reason: str | None, answer: tuple[str, bytes] | None
) -> None:
    """Close an operation with strata's outcome and queue its answer for CloudStack's exchange."""
    await connection.execute(
        "UPDATE bridge.operations SET outcome = $2, reason = $3, settled_at = now() WHERE operation_key = $1",
        operation_key,
        "succeeded" if succeeded else "failed",
        reason,
    )
    if answer is not None:
        await connection.execute(
            "INSERT INTO bridge.answers (operation_key, routing_key, body) VALUES ($1, $2, $3)"
            " ON CONFLICT (operation_key) DO NOTHING",
            operation_key,
            answer[0],
            answer[1],
        )


async def first_report(connection: Any, report_key: str) -> bool:
    """Record a report key; False if it was recorded before (the same Completed delivered again)."""
    inserted = await connection.fetchval(
        "INSERT INTO bridge.reports (report_key) VALUES ($1) ON CONFLICT DO NOTHING RETURNING true", report_key
    )
    return inserted is True


async def first_transition(connection: Any, resource_id: UUID, transition: str) -> bool:
    """Record a resource's transition; False if it is the one recorded last for that resource (CloudStack sends
    each transition before and after it happens, and a redelivery repeats it too)."""
    previous = await connection.fetchval(
        "SELECT transition FROM bridge.transitions WHERE resource_id = $1 FOR UPDATE", resource_id
    )
    if previous == transition:
        return False
    await connection.execute(
        "INSERT INTO bridge.transitions (resource_id, transition) VALUES ($1, $2)"
        " ON CONFLICT (resource_id) DO UPDATE SET transition = EXCLUDED.transition",
        resource_id,
        transition,
    )
    return True


async def unsent_answers(connection: Any, limit: int) -> list[tuple[int, str, bytes]]:
    """Answers not yet published, oldest first: (seq, routing key, body)."""
    rows = await connection.fetch(
        "SELECT seq, routing_key, body FROM bridge.answers WHERE sent_at IS NULL ORDER BY seq LIMIT $1", limit
    )
    return [(row["seq"], row["routing_key"], bytes(row["body"])) for row in rows]


async def mark_sent(connection: Any, seqs: list[int]) -> None:
    """Answers the broker confirmed."""
    await connection.execute("UPDATE bridge.answers SET sent_at = now() WHERE seq = ANY($1::bigint[])", seqs)
