"""The bridge's tables (schema `bridge`): operations (its inbox), events received, reports, transitions, answers.

Every function takes the connection of an open transaction (`Any`: asyncpg's, as the services' repositories do).
"""

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
    rows = [
        [literal(value) for value in _event_values(each, "true" if each.cloudstack_failed else "false")]
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


@dataclass(frozen=True)
class NewOperation:
    """An operation to record: what CloudStack asked for, and the command strata sends for it (if any)."""

    base_key: str
    generation: int
    request: ActionEvent
    entity: str
    entity_uuid: UUID
    command_type: str | None
    correlation_id: UUID | None

    @property
    def operation_key(self) -> str:
        """Its key: base key and generation."""
        return f"{self.base_key}#{self.generation}"


async def open_operations(connection: Any, new: list[NewOperation]) -> set[str]:
    """Record the operations CloudStack asked for; return the keys recorded now. A key missing from the answer was
    recorded first by a concurrent transaction (the unique key waits for its commit): that request is a duplicate."""
    if not new:
        return set()
    contexts = [
        json.dumps(
            {
                "user": str(op.request.user) if op.request.user else None,
                "account": str(op.request.account) if op.request.account else None,
                "entities": {name: str(value) for name, value in op.request.entities.items()},
            }
        )
        for op in new
    ]
    rows = await connection.fetch(
        "INSERT INTO bridge.operations (operation_key, base_key, generation, event, entity, entity_uuid, request,"
        " command_type, correlation_id, requested_at)"
        " SELECT k, b, g, e, n, u, r::jsonb, c, i, t FROM unnest($1::text[], $2::text[], $3::int[], $4::text[],"
        " $5::text[], $6::uuid[], $7::text[], $8::text[], $9::uuid[], $10::timestamptz[])"
        " AS x(k, b, g, e, n, u, r, c, i, t)"
        " ON CONFLICT DO NOTHING RETURNING operation_key",
        [op.operation_key for op in new],
        [op.base_key for op in new],
        [op.generation for op in new],
        [op.request.event for op in new],
        [op.entity for op in new],
        [op.entity_uuid for op in new],
        contexts,
        [op.command_type for op in new],
        [op.correlation_id for op in new],
        [op.request.occurred_at for op in new],
    )
    return {row["operation_key"] for row in rows}


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
