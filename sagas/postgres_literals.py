"""The saga's write of one unit of work as a statement without parameters, to travel with the COMMIT.

The same change as `PostgresSagaSession.write` (steps upserted, timers and events added, the instance updated),
rendered with the bus's exhaustive literals so that it needs no round trip of its own.
"""

import json
from collections.abc import Sequence

from bus.postgres.literals import literal, text_literal, values_rows
from sagas.records import SagaEvent, SagaInstance, StepRecord, Timer
from sagas.serialize import message_to_json, step_to_json


def deferred_write(
    schema: str,
    instance: SagaInstance,
    steps: Sequence[StepRecord],
    timers: Sequence[Timer],
    events: Sequence[SagaEvent],
    *,
    created: bool = False,
) -> str:
    """One statement (CTEs and the instance UPDATE); `schema` must be validated by the caller.

    With `created`, the instance is new in this transaction and not written yet: it is INSERTed (revision 1, as an
    insert and an update would leave it), and a saga that exists fails the statement.
    """
    parts: list[str] = []
    if steps:
        rows = [
            (
                literal(step.saga_id),
                literal(step.seq),
                literal(step.kind.value),
                literal(step.status.value),
                text_literal(json.dumps(step_to_json(step))) + "::jsonb",
            )
            for step in steps
        ]
        parts.append(
            f"saved_steps AS (INSERT INTO {schema}.steps (saga_id, seq, kind, status, record) VALUES "
            f"{values_rows(rows)} ON CONFLICT (saga_id, seq) DO UPDATE SET status = EXCLUDED.status, "
            "record = EXCLUDED.record)"
        )
    if timers:
        timer_rows = [
            (literal(t.saga_id), literal(t.seq), literal(t.kind.value), literal(t.attempt), literal(t.due_at))
            for t in timers
        ]
        parts.append(
            f"new_timers AS (INSERT INTO {schema}.timers (saga_id, seq, kind, attempt, due_at) VALUES "
            f"{values_rows(timer_rows)})"
        )
    if events:
        event_rows = [
            (literal(e.saga_id), literal(e.at), literal(e.kind), text_literal(json.dumps(e.detail)) + "::jsonb")
            for e in events
        ]
        parts.append(
            f"new_events AS (INSERT INTO {schema}.events (saga_id, at, kind, detail) VALUES {values_rows(event_rows)})"
        )
    result = message_to_json(instance.result)
    if created:
        update = instance_insert(schema, instance, revision=1)
        return f"WITH {', '.join(parts)} {update}" if parts else update
    update = (
        f"UPDATE {schema}.instances SET status = {literal(instance.status.value)}, "
        f"result = {'NULL' if result is None else text_literal(json.dumps(result)) + '::jsonb'}, "
        f"error = {literal(instance.error)}, pivoted = {'true' if instance.pivoted else 'false'}, "
        f"fencing_token = {literal(instance.fencing_token)}, updated_at = {literal(instance.updated_at)}, "
        f"revision = revision + 1 WHERE saga_id = {literal(instance.saga_id)}"
    )
    return f"WITH {', '.join(parts)} {update}" if parts else update


def instance_insert(schema: str, instance: SagaInstance, *, revision: int = 0) -> str:
    """The INSERT of a new instance, without ON CONFLICT: a saga that exists fails the transaction."""
    result = message_to_json(instance.result)
    values = [
        literal(instance.saga_id),
        literal(instance.name),
        literal(instance.version),
        literal(instance.status.value),
        text_literal(json.dumps(message_to_json(instance.input))) + "::jsonb",
        literal(instance.correlation_id),
        "NULL" if result is None else text_literal(json.dumps(result)) + "::jsonb",
        literal(instance.error),
        "true" if instance.pivoted else "false",
        literal(instance.fencing_token),
        literal(instance.created_at),
        literal(instance.updated_at),
        literal(revision),
    ]
    return (
        f"INSERT INTO {schema}.instances (saga_id, name, version, status, input, correlation_id, result, error, "
        f"pivoted, fencing_token, created_at, updated_at, revision) VALUES ({', '.join(values)})"
    )
