"""Export a selection from a database, and import an export into another: the journal and the saga store.

An export holds the selected messages, the records of the sagas among them, the configurations (masked) of the
plugins behind the pools and stores they name, and the code version that recorded them. An import checks the whole
file first (`export_format`), then writes it in one transaction: a bad file, or a failure halfway, imports nothing.
Messages and sagas already present are left as they are, so importing the same export twice changes nothing.
"""

import importlib.metadata
import json
import shutil
import subprocess
from contextlib import aclosing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bus.postgres.errors import translated_errors
from bus.postgres.migrate import DEFAULT_SCHEMA, validate_schema
from bus.postgres.pool import Pool
from sagas.definition import SagaRegistry, saga_registry
from sagas.postgres_session import PostgresSagaSession
from sagas.postgres_store import DEFAULT_SCHEMA as SAGAS_SCHEMA
from schemas import MessageRegistry, StrataError, registry
from schemas.redact import redact, redacted
from services.replay.export_format import Export, write_export
from services.replay.reading import Recorded, pages
from services.replay.saga_records import load_sagas, saga_to_json
from services.replay.selection import Selection

JsonObject = dict[str, Any]  # JSON values of every kind
MAX_EXPORT = 1_000_000


def code_version() -> str:
    """strata's version, and the git commit when it runs from a checkout (a CI run's exports name their commit)."""
    try:
        version = importlib.metadata.version("strata")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    git = shutil.which("git")
    if git is None:
        return version
    try:
        commit = subprocess.run(
            [git, "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+g{commit}"


def describe_selection(selection: Selection) -> JsonObject:
    """The selection as JSON, for the export's header (what was asked, so a reader knows what is missing)."""
    shown: JsonObject = {}
    for name in ("correlation_ids", "saga_ids", "message_ids", "types", "services", "statuses"):
        values = getattr(selection, name)
        if values:
            shown[name] = [str(value) for value in values]
    if selection.entities:
        shown["entities"] = [[kind, str(entity_id)] for kind, entity_id in selection.entities]
    for name in ("since", "until"):
        moment = getattr(selection, name)
        if moment is not None:
            shown[name] = moment.isoformat()
    shown["whole_operations"] = selection.whole_operations
    return shown


async def plugin_configs(pool: Pool, messages: list[Recorded], *, schema: str = DEFAULT_SCHEMA) -> list[JsonObject]:
    """The newest configuration (masked) journaled for each pool or store the messages name: the commands that
    carry a plugin and its config (`pool.add`, a store's registration), found by the ids they name."""
    named = sorted({value for message in messages for value in _ids(message.payload())})
    if not named:
        return []
    schema = validate_schema(schema)
    sql = (
        f"SELECT DISTINCT ON (j.type, j.payload->>'plugin', j.payload::text) j.message_id, j.type, j.version,"
        f" j.payload::text AS payload FROM {schema}.journal AS j"
        " WHERE j.payload ? 'plugin' AND j.payload ? 'config' AND j.payload::text LIKE ANY($1::text[])"
        " ORDER BY j.type, j.payload->>'plugin', j.payload::text, j.occurred_at DESC LIMIT 1000"
    )
    with translated_errors():
        rows = await pool.fetch(sql, [f"%{value}%" for value in named])
    configs = []
    for row in rows:
        try:
            decoded = registry.decode(row["type"], row["version"], row["payload"])
            shown = redacted(decoded)
        except StrataError:
            shown = redact(json.loads(row["payload"]))
        configs.append(
            {
                "kind": "plugin_config",
                "from_message": str(row["message_id"]),
                "type": row["type"],
                "plugin": shown.get("plugin"),
                "names": sorted(set(_ids(shown)) & set(named)),
                "config": shown.get("config"),
            }
        )
    return configs


def _ids(value: Any, depth: int = 0) -> list[str]:  # JSON of any shape
    """The UUID-looking strings in a JSON value."""
    if depth > 8:
        return []
    if isinstance(value, dict):
        return [found for item in value.values() for found in _ids(item, depth + 1)]
    if isinstance(value, list):
        return [found for item in value for found in _ids(item, depth + 1)]
    if isinstance(value, str) and len(value) == 36 and value.count("-") == 4:
        return [value]
    return []


async def export_selection(
    pool: Pool,
    selection: Selection,
    path: Path,
    *,
    bus_schema: str = DEFAULT_SCHEMA,
    sagas_schema: str = SAGAS_SCHEMA,
    sagas: SagaRegistry = saga_registry,
    messages: MessageRegistry = registry,
) -> tuple[int, int]:
    """Write the selection to `path`; return (messages, sagas) written. Refuses an empty selection."""
    found: list[Recorded] = []
    async with aclosing(pages(pool, selection, schema=bus_schema, messages=messages)) as reading:
        async for page in reading:
            found.extend(page)
            if len(found) > MAX_EXPORT:
                raise StrataError(f"the selection holds over {MAX_EXPORT} messages: narrow it (--since, --until)")
    if not found:
        raise StrataError("no message matches the selection: nothing to export")
    saga_ids = [message.saga_id for message in found if message.saga_id is not None]
    records = await load_sagas(pool, saga_ids, schema=sagas_schema)
    configs = await plugin_configs(pool, found, schema=bus_schema)
    header = {
        "created_at": datetime.now(UTC).isoformat(),
        "code_version": code_version(),
        "selection": describe_selection(selection),
        "saga_definitions": sorted([definition.name, definition.version] for definition in sagas),
        "counts": {"messages": len(found), "sagas": len(records), "plugin_configs": len(configs)},
    }
    lines = [
        *({"kind": "message", **message.as_json()} for message in found),
        *({"kind": "saga", "saga": saga_to_json(record, messages)} for record in records),
        *configs,
    ]
    write_export(path, header, lines)
    return len(found), len(records)


async def import_export(
    pool: Pool, export: Export, *, bus_schema: str = DEFAULT_SCHEMA, sagas_schema: str = SAGAS_SCHEMA
) -> tuple[int, int]:
    """Write a checked export's messages into the journal and its sagas into the saga store, in one transaction;
    return (messages, sagas) that were new here."""
    bus_schema = validate_schema(bus_schema)
    rows = [
        (
            message.message_id,
            message.type,
            message.version,
            message.correlation_id,
            message.causation_id,
            message.saga_id,
            message.step,
            message.producer,
            message.fencing_token,
            message.occurred_at,
            message.recorded_at,
            message.headers_text,
            json.dumps(message.payload()),
        )
        for message in export.messages
    ]
    with translated_errors():
        async with pool.acquire() as connection, connection.transaction():
            before = await connection.fetchval(f"SELECT count(*) FROM {bus_schema}.journal")
            await connection.executemany(
                f"INSERT INTO {bus_schema}.journal (message_id, type, version, correlation_id, causation_id, saga_id,"
                " step, producer, fencing_token, occurred_at, recorded_at, headers, payload)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13::jsonb)"
                " ON CONFLICT (message_id) DO NOTHING",
                rows,
            )
            added = await connection.fetchval(f"SELECT count(*) FROM {bus_schema}.journal") - before
            session = PostgresSagaSession(connection, validate_schema(sagas_schema))
            sagas_added = 0
            for record in export.sagas:
                if not await session.insert_instance(record.instance):
                    continue
                sagas_added += 1
                await session.save_steps(record.steps)
                for event in record.events:
                    await session.record_event(event)
    return int(added), sagas_added
