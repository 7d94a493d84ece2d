"""The saga store's side of a selection: each saga's instance, steps and events (operator actions among them).

The bus journal records messages; the saga store records what each saga made of them (which step was a
compensation, what an operator did). A timeline and an export carry both. The commands a saga keeps in its steps
are masked like any payload shown (`schemas.redact`).
"""

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from bus.postgres.pool import Pool
from sagas.postgres_store import DEFAULT_SCHEMA, PostgresSagaStore
from sagas.records import SagaEvent
from sagas.serialize import instance_from_json, instance_to_json, step_from_json, step_to_json
from schemas import MessageRegistry, registry
from schemas.redact import redact, redacted_body
from services.replay.timeline import SagaRecord

JsonObject = dict[str, Any]  # a saga's JSON export: values of every kind


async def load_sagas(pool: Pool, saga_ids: Iterable[UUID], *, schema: str = DEFAULT_SCHEMA) -> list[SagaRecord]:
    """The records of the sagas among `saga_ids` that the store knows, in the order given."""
    wanted = list(dict.fromkeys(saga_ids))
    if not wanted:
        return []  # a journal without sagas may sit in a database without saga tables
    store = PostgresSagaStore(pool, schema=schema)
    found: list[SagaRecord] = []
    async with store.session() as session:
        for saga_id in wanted:
            instance = await session.get_instance(saga_id)
            if instance is None:
                continue
            found.append(SagaRecord(instance, await session.load_steps(saga_id), await session.list_events(saga_id)))
    return found


def _mask_message(stored: Any, messages: MessageRegistry) -> Any:  # a StoredMessage as JSON, or None
    if not isinstance(stored, dict) or "type" not in stored or "payload" not in stored:
        return redact(stored)
    payload = redacted_body(str(stored["type"]), stored.get("version"), json.dumps(stored["payload"]), messages)
    return {**stored, "payload": payload}


def saga_to_json(record: SagaRecord, messages: MessageRegistry = registry) -> JsonObject:
    """A saga's records as JSON, every message it keeps masked by its schema and by name."""
    instance = instance_to_json(record.instance)
    for key in ("input", "result"):
        instance[key] = _mask_message(instance.get(key), messages)
    steps = []
    for step in record.steps:
        shown = step_to_json(step)
        for key in ("command", "compensate", "probe", "result"):
            if shown.get(key) is not None:
                shown[key] = _mask_message(shown[key], messages)
        steps.append(shown)
    events = [
        {"at": event.at.isoformat(), "kind": event.kind, "detail": redact(event.detail)} for event in record.events
    ]
    return {"instance": instance, "steps": steps, "events": events}


def saga_from_json(data: JsonObject) -> SagaRecord:
    """Read back what `saga_to_json` wrote (raises KeyError, TypeError or ValueError on a malformed record)."""
    instance = instance_from_json(data["instance"])
    steps = [step_from_json(instance.saga_id, step) for step in data["steps"]]
    events = [
        SagaEvent(instance.saga_id, datetime.fromisoformat(event["at"]), str(event["kind"]), dict(event["detail"]))
        for event in data["events"]
    ]
    return SagaRecord(instance, steps, events)
