"""Saga records as JSON: how the PostgreSQL store keeps journal entries and how `strata saga` exports them."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sagas.records import (
    Attempt,
    JsonObject,
    RetryPolicy,
    SagaInstance,
    SagaStatus,
    StepKind,
    StepRecord,
    StepStatus,
    StoredMessage,
)
from schemas import ErrorInfo


def message_to_json(message: StoredMessage | None) -> JsonObject | None:
    """A stored message as JSON, None as None."""
    return None if message is None else {"type": message.type, "version": message.version, "payload": message.payload}


def message_from_json(data: Any) -> StoredMessage | None:  # JSON from the database or a file: checked here
    """The stored message that `message_to_json` wrote."""
    if data is None:
        return None
    return StoredMessage(str(data["type"]), int(data["version"]), dict(data["payload"]))


def step_to_json(record: StepRecord) -> JsonObject:
    """A journal entry as JSON (the saga id is kept outside, as the row's key)."""
    return {
        "seq": record.seq,
        "kind": record.kind.value,
        "status": record.status.value,
        "command": message_to_json(record.command),
        "compensate": message_to_json(record.compensate),
        "probe": message_to_json(record.probe),
        "compensates": record.compensates,
        "policy": record.policy.to_json(),
        "timeout": record.timeout,
        "args": record.args,
        "attempt": record.attempt,
        "result": message_to_json(record.result),
        "value": record.value,
        "error": record.error.model_dump() if record.error else None,
        "attempts": [attempt.to_json() for attempt in record.attempts],
        "created_at": _time(record.created_at),
        "finished_at": _time(record.finished_at),
    }


def step_from_json(saga_id: UUID, data: JsonObject) -> StepRecord:
    """The journal entry that `step_to_json` wrote."""
    return StepRecord(
        saga_id=saga_id,
        seq=int(data["seq"]),
        kind=StepKind(data["kind"]),
        status=StepStatus(data["status"]),
        command=message_from_json(data.get("command")),
        compensate=message_from_json(data.get("compensate")),
        probe=message_from_json(data.get("probe")),
        compensates=data.get("compensates"),
        policy=RetryPolicy.from_json(data["policy"]),
        timeout=data.get("timeout"),
        args=dict(data.get("args") or {}),
        attempt=int(data.get("attempt", 0)),
        result=message_from_json(data.get("result")),
        value=data.get("value"),
        error=ErrorInfo.model_validate(data["error"]) if data.get("error") else None,
        attempts=[Attempt.from_json(item) for item in data.get("attempts", [])],
        created_at=_parse(data.get("created_at")),
        finished_at=_parse(data.get("finished_at")),
    )


def instance_to_json(instance: SagaInstance) -> JsonObject:
    """An instance as JSON (for exports)."""
    return {
        "saga_id": str(instance.saga_id),
        "name": instance.name,
        "version": instance.version,
        "status": instance.status.value,
        "input": message_to_json(instance.input),
        "correlation_id": str(instance.correlation_id),
        "result": message_to_json(instance.result),
        "error": instance.error,
        "pivoted": instance.pivoted,
        "fencing_token": instance.fencing_token,
        "created_at": _time(instance.created_at),
        "updated_at": _time(instance.updated_at),
    }


def instance_from_json(data: JsonObject) -> SagaInstance:
    """The instance that `instance_to_json` wrote."""
    stored_input = message_from_json(data["input"])
    assert stored_input is not None
    return SagaInstance(
        saga_id=UUID(str(data["saga_id"])),
        name=str(data["name"]),
        version=int(data["version"]),
        status=SagaStatus(data["status"]),
        input=stored_input,
        correlation_id=UUID(str(data["correlation_id"])),
        result=message_from_json(data.get("result")),
        error=data.get("error"),
        pivoted=bool(data.get("pivoted", False)),
        fencing_token=data.get("fencing_token"),
        created_at=_parse(data.get("created_at")),
        updated_at=_parse(data.get("updated_at")),
    )


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse(value: Any) -> datetime | None:  # an ISO string or null from JSON
    return datetime.fromisoformat(value) if value else None
