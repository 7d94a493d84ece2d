"""Benchmark of the replay tool: select-and-decode over a journal of a million messages, and sandbox replay.

The journal is built in a database of its own (created on the server of STRATA_DATABASE_URL, dropped afterwards)
from the messages of the recorded exports in tests/replay/exports (the demo's operations: real payloads of every
kind), copied with new ids into operations of their own, with the bus's migrations and so its indexes in place.

- `select_decode_msgs_per_s`: `strata replay`'s reading (services.replay.reading.pages): keyset pages, every payload
  decoded through the message registry, its secrets masked when shown. Baseline in the same run (rounds interleaved,
  best of each): a plain asyncpg SELECT of the same rows and columns through a cursor (`plain_select_msgs_per_s`).
  Target: ratio >= 0.5 and >= 20,000 messages/s.
- `entity_select_ms`: `strata replay --volume V` of one operation's volume in that journal (a scan of the payloads'
  text: no index costs the journal's inserts for it, see bus migration 0006).
- `sandbox_sagas_per_s`: the sandbox replay (services.replay.sandbox) of 1,000 revert sagas (copies of the recorded
  compensated revert, with new ids), on four stores of their own in a fresh database; every one must replay the same.
  `sandbox_in_memory_sagas_per_s`: the same on saga stores in memory (`strata replay sandbox --in-memory`).

usage: python bench/replay.py [MESSAGES] [SAGAS]   (STRATA_DATABASE_URL)
prints one JSON line: {"bench": "replay", "messages": N, "select_decode_msgs_per_s": ..., "plain_select_msgs_per_s":
                       ..., "ratio_vs_plain": ..., "entity_select_ms": ..., "sagas": S, "sandbox_sagas_per_s": ...}
"""

import asyncio
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID, uuid4

import asyncpg

# Run as `python bench/replay.py`, this folder heads sys.path, and bench/bus.py would shadow the `bus` package;
# the imports below come after this fix (E402).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]

from bus.postgres import create_pool, migrate  # noqa: E402
from sagas.postgres_migrate import migrate_sagas  # noqa: E402
from sagas.postgres_store import PostgresSagaStore  # noqa: E402
from sagas.work import command_id, probe_id, saga_id_for  # noqa: E402
from services.replay.code import load_code  # noqa: E402
from services.replay.export_format import Export, parse_export, render_lines  # noqa: E402
from services.replay.reading import pages  # noqa: E402
from services.replay.sandbox import Sandbox  # noqa: E402
from services.replay.selection import Selection, select_sql  # noqa: E402

EXPORTS = _HERE.parent / "tests" / "replay" / "exports"
COLUMNS = [
    "message_id",
    "type",
    "version",
    "correlation_id",
    "causation_id",
    "saga_id",
    "step",
    "producer",
    "fencing_token",
    "occurred_at",
    "recorded_at",
    "headers",
    "payload",
]
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SAFETY = re.compile(r"safety-([0-9a-f]{8})-([0-9a-f]{8})")
Record = dict[str, Any]  # a line of an export: JSON values of every kind


def _lines(path: Path) -> list[Record]:
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for record in records:
        record.pop("sha256", None)
    return records


def _templates() -> list[list[Record]]:
    """The recorded operations' messages, one list per export, in their recorded order."""
    operations = []
    for path in sorted(EXPORTS.glob("*.jsonl")):
        operations.append([record for record in _lines(path) if record["kind"] == "message"])
    return operations


def _journal_rows(count: int, batch: int = 50_000) -> Iterator[list[tuple[object, ...]]]:
    """`count` journal rows in batches: the recorded operations again and again, each copy an operation of its own."""
    operations = _templates()
    start = datetime.now(UTC) - timedelta(days=30)
    rows: list[tuple[object, ...]] = []
    made = copy = 0
    while made < count:
        operation = operations[copy % len(operations)]
        correlation, saga, previous = uuid4(), uuid4(), None
        for record in operation:
            message_id = uuid4()
            moment = start + timedelta(milliseconds=made)
            rows.append(
                (
                    message_id,
                    record["type"],
                    record["version"],
                    correlation,
                    previous,
                    saga if record["saga_id"] else None,
                    record["step"],
                    record["producer"],
                    record["fencing_token"],
                    moment,
                    moment,
                    "{}",
                    json.dumps(record["payload"]),
                )
            )
            previous = message_id
            made += 1
            if len(rows) == batch or made == count:
                yield rows
                rows = []
            if made == count:
                break
        copy += 1


def _copy_of(records: list[Record]) -> list[Record]:
    """An export's records with every id new, keeping what derives from the saga's id (its commands' ids)."""
    messages = [record for record in records if record["kind"] == "message"]
    saga = next(record["saga"] for record in records if record["kind"] == "saga")
    old_saga = UUID(saga["instance"]["saga_id"])
    start = next(record for record in messages if saga_id_for(UUID(record["message_id"])) == old_saga)
    new_start = uuid4()
    new_saga = saga_id_for(new_start)
    mapping = {str(start["message_id"]): str(new_start), str(old_saga): str(new_saga)}
    for record in messages:
        step = record["step"]
        if record["saga_id"] == str(old_saga) and step is not None:
            for attempt in range(1, 20):
                for derive in (command_id, probe_id):
                    if record["message_id"] == str(derive(old_saga, step, attempt)):
                        mapping[record["message_id"]] = str(derive(new_saga, step, attempt))
    text = json.dumps(records)
    for found in set(_UUID.findall(text)) - set(mapping):
        mapping[found] = str(uuid4())
    text = _UUID.sub(lambda match: mapping[match.group(0)], text)
    # The revert names its safety snapshots after short forms of ids (`safety-<op>-<volume>`): copied along.
    prefixes = {old[:8]: new[:8] for old, new in mapping.items()}
    text = _SAFETY.sub(lambda match: f"safety-{prefixes[match[1]]}-{prefixes[match[2]]}", text)
    copied: list[Record] = json.loads(text)
    return copied


def _sagas_export(count: int) -> Export:
    records = _lines(EXPORTS / "revert_vm_compensated.jsonl")
    header = {key: value for key, value in records[0].items() if key not in {"kind", "format", "format_version"}}
    body = [record for _ in range(count) for record in _copy_of(records[1:-1])]
    return parse_export("".join(render_lines(header, body)).splitlines())


async def _select_decode(pool: asyncpg.Pool) -> tuple[int, float]:
    started = time.perf_counter()
    seen = 0
    async for page in pages(pool, Selection(), page_size=5000):
        seen += len(page)
    return seen, time.perf_counter() - started


async def _plain_select(pool: asyncpg.Pool) -> tuple[int, float]:
    sql, _ = select_sql(Selection(), after=None, limit=1)
    sql = sql.rsplit(" LIMIT ", 1)[0]
    started = time.perf_counter()
    seen = 0
    async with pool.acquire() as connection, connection.transaction():
        async for _ in connection.cursor(sql, prefetch=5000):
            seen += 1
    return seen, time.perf_counter() - started


async def _entity_select(pool: asyncpg.Pool) -> float:
    """Add one operation naming a new volume, then time `--volume V` (whole operations) over the big journal."""
    volume = uuid4()
    rows = [
        (uuid4(), "volume.created", 1, uuid4(), None, None, None, "storage@h", None, datetime.now(UTC),
         datetime.now(UTC), "{}", json.dumps({"volume_id": str(volume)}))
    ]  # fmt: skip
    await pool.copy_records_to_table("journal", schema_name="bus", records=rows, columns=COLUMNS)
    started = time.perf_counter()
    found = [message async for page in pages(pool, Selection(entities=(("volume", volume),))) for message in page]
    elapsed = time.perf_counter() - started
    assert len(found) == 1, found
    return elapsed * 1000


async def _sandbox(database_url: str, sagas: int, workers: int) -> tuple[float, bool]:
    export = _sagas_export(sagas)
    pool = await create_pool(database_url, min_size=workers, max_size=workers * 2)
    try:
        stores = []
        for index in range(workers):
            async with pool.acquire() as connection:
                await migrate_sagas(connection, f"sandbox{index}")
            stores.append(PostgresSagaStore(pool, schema=f"sandbox{index}"))
        shares = [export.sagas[index::workers] for index in range(workers)]
        started = time.perf_counter()
        verdicts = await asyncio.gather(
            *(
                Sandbox(store).replay(Export(export.header, export.messages, share, []))
                for store, share in zip(stores, shares, strict=True)
            )
        )
        elapsed = time.perf_counter() - started
    finally:
        await pool.close()
    return sagas / elapsed, all(verdict.same for group in verdicts for verdict in group)


async def _sandbox_in_memory(sagas: int) -> tuple[float, bool]:
    export = _sagas_export(sagas)
    started = time.perf_counter()
    verdicts = await Sandbox(None).replay(export)
    return sagas / (time.perf_counter() - started), all(verdict.same for verdict in verdicts)


async def main(messages: int, sagas: int) -> dict[str, object]:
    load_code()
    server = os.environ.get("STRATA_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"strata_bench_replay_{uuid4().hex[:8]}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    database_url = urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    try:
        pool = await create_pool(database_url, min_size=2, max_size=4)
        async with pool.acquire() as connection:
            await migrate(connection)
        for rows in _journal_rows(messages):
            await pool.copy_records_to_table("journal", schema_name="bus", records=rows, columns=COLUMNS)
        await pool.execute("VACUUM ANALYZE bus.journal")
        decoded, plain = [], []
        for _ in range(2):  # interleaved rounds, best of each: a neighbour's burst hits one run, not one contender
            decoded.append(await _select_decode(pool))
            plain.append(await _plain_select(pool))
        assert all(seen == messages for seen, _ in decoded + plain), (decoded, plain)
        entity_ms = await _entity_select(pool)
        await pool.close()
        sagas_per_s, all_same = await _sandbox(database_url, sagas, workers=4)
        memory_per_s, memory_same = await _sandbox_in_memory(sagas)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    best_decoded = messages / min(elapsed for _, elapsed in decoded)
    best_plain = messages / min(elapsed for _, elapsed in plain)
    return {
        "bench": "replay",
        "messages": messages,
        "select_decode_msgs_per_s": round(best_decoded),
        "plain_select_msgs_per_s": round(best_plain),
        "ratio_vs_plain": round(best_decoded / best_plain, 3),
        "entity_select_ms": round(entity_ms, 1),
        "sagas": sagas,
        "sandbox_sagas_per_s": round(sagas_per_s, 1),
        "sandbox_all_same": all_same,
        "sandbox_in_memory_sagas_per_s": round(memory_per_s, 1),
        "sandbox_in_memory_all_same": memory_same,
    }


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    saga_count = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    print(json.dumps(asyncio.run(main(count, saga_count))))
