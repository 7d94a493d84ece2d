"""The saga tables' rows in PostgreSQL: the instance columns, and the conversions between records and rows.

Shared by the locking session (`sagas.postgres_session`), the optimistic one (`sagas.postgres_optimistic`) and
their statements; the unit of work's rendering without parameters is `sagas.postgres_literals`.
"""

import json
from collections.abc import Sequence
from typing import Any

from sagas.records import SagaInstance, SagaStatus, StepRecord
from sagas.serialize import message_from_json, message_to_json, step_to_json

INSTANCE_COLUMNS = (
    "saga_id, name, version, status, input, correlation_id, result, error, pivoted, fencing_token, "
    "created_at, updated_at"
)


def steps_upsert(schema: str, first: int) -> str:
    """The journal upsert from the column arrays of `steps_columns`, as parameters $first..$first+4."""
    p = [f"${first + offset}" for offset in range(5)]
    return (
        f"INSERT INTO {schema}.steps (saga_id, seq, kind, status, record) "
        f"SELECT * FROM unnest({p[0]}::uuid[], {p[1]}::int[], {p[2]}::text[], {p[3]}::text[], {p[4]}::jsonb[]) "
        "ON CONFLICT (saga_id, seq) DO UPDATE SET status = EXCLUDED.status, record = EXCLUDED.record"
    )


def instance_update(instance: SagaInstance) -> tuple[Any, ...]:
    """Parameters $1..$7 of the instance UPDATE."""
    return (
        instance.saga_id,
        instance.status.value,
        _json(message_to_json(instance.result)),
        instance.error,
        instance.pivoted,
        instance.fencing_token,
        instance.updated_at,
    )


def steps_columns(records: Sequence[StepRecord]) -> tuple[list[Any], ...]:
    """The unnest arrays of `steps_upsert`."""
    return (
        [record.saga_id for record in records],
        [record.seq for record in records],
        [record.kind.value for record in records],
        [record.status.value for record in records],
        [json.dumps(step_to_json(record)) for record in records],
    )


def instance_row(instance: SagaInstance) -> tuple[Any, ...]:
    """The column values, in `INSTANCE_COLUMNS` order."""
    return (
        instance.saga_id,
        instance.name,
        instance.version,
        instance.status.value,
        _json(message_to_json(instance.input)),
        instance.correlation_id,
        _json(message_to_json(instance.result)),
        instance.error,
        instance.pivoted,
        instance.fencing_token,
        instance.created_at,
        instance.updated_at,
    )


def instance_from_row(row: Any) -> SagaInstance:  # an asyncpg Record of INSTANCE_COLUMNS
    """The instance a row of `INSTANCE_COLUMNS` holds."""
    stored_input = message_from_json(json.loads(row["input"]))
    assert stored_input is not None
    return SagaInstance(
        saga_id=row["saga_id"],
        name=row["name"],
        version=row["version"],
        status=SagaStatus(row["status"]),
        input=stored_input,
        correlation_id=row["correlation_id"],
        result=message_from_json(json.loads(row["result"])) if row["result"] else None,
        error=row["error"],
        pivoted=row["pivoted"],
        fencing_token=row["fencing_token"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _json(value: Any) -> str | None:  # any JSON value, or None for SQL NULL
    return None if value is None else json.dumps(value)
