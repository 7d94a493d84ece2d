"""`services.replay.reading.pages` on a real journal: payloads decoded page after page (the next page asked for while
one is decoded), old versions lifted by their upcasters, secrets masked, an unknown type kept with its reason; a
reader that stops early leaves its connection clean for the next one."""

import json
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from pydantic import Field, SecretStr

from bus.postgres import create_pool, migrate
from schemas import Command, MessageRegistry, message, upcaster
from services.replay.reading import pages, read
from services.replay.selection import Selection

pytestmark = pytest.mark.integration

local = MessageRegistry()


@message("sample.disk.attach", version=2, into=local)
class AttachSampleDisk(Command):
    """Attach a disk (test message): version 2 counts bytes, version 1 counted GiB."""

    disk_id: UUID
    size_bytes: int = Field(gt=0)
    password: SecretStr


@upcaster("sample.disk.attach", from_version=1, into=local)
def _gib_to_bytes(data: dict[str, object]) -> dict[str, object]:
    gib = data.pop("size_gib")
    return {**data, "size_bytes": gib * 1024**3 if isinstance(gib, int) else gib}  # not a number: refused as such


COLUMNS = ["message_id", "type", "version", "correlation_id", "producer", "occurred_at", "recorded_at", "payload"]


def _rows(count: int) -> list[tuple[object, ...]]:
    """`count` messages: versions 2 and 1 in turn, every seventh of a type nobody knows."""
    start = datetime.now(UTC) - timedelta(hours=1)
    rows: list[tuple[object, ...]] = []
    for index in range(count):
        moment = start + timedelta(seconds=index)
        if index % 7 == 6:
            kind, version, payload = "nobody.knows.this", 1, {"token": "hunter2", "n": index}
        elif index % 2:
            kind, version, payload = "sample.disk.attach", 1, {"disk_id": str(uuid4()), "size_gib": 2, "password": "pw"}
        else:
            kind, version, payload = "sample.disk.attach", 2, {"disk_id": str(uuid4()), "size_bytes": index + 1,
                                                               "password": "pw"}  # fmt: skip
        rows.append((uuid4(), kind, version, uuid4(), "test@h", moment, moment, json.dumps(payload)))
    return rows


async def test_pages_decode_every_version_mask_secrets_and_stop_cleanly(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1)  # one connection: a dirty one would fail next
    try:
        async with pool.acquire() as connection:
            await migrate(connection)
        rows = _rows(23)
        await pool.copy_records_to_table("journal", schema_name="bus", records=rows, columns=COLUMNS)

        paged = [page async for page in pages(pool, Selection(), page_size=4, messages=local)]
        async with aclosing(pages(pool, Selection(), page_size=4, messages=local)) as reading:
            first = await anext(reading)  # then closed with the next page asked for
        whole, _ = await read(pool, Selection(), limit=100, messages=local)
    finally:
        await pool.close()

    assert [len(page) for page in paged] == [4, 4, 4, 4, 4, 3]
    found = [recorded for page in paged for recorded in page]
    assert [recorded.message_id for recorded in found] == [row[0] for row in rows]
    assert [recorded.message_id for recorded in first] == [row[0] for row in rows[:4]]
    assert [recorded.message_id for recorded in whole] == [row[0] for row in rows]
    for row, recorded in zip(rows, found, strict=True):
        shown = recorded.payload()
        assert "pw" not in json.dumps(shown)
        assert "hunter2" not in json.dumps(shown)
        if row[1] == "nobody.knows.this":
            assert recorded.message is None
            assert "nobody.knows.this" in str(recorded.problem)
            assert shown["token"] != "hunter2"
            continue
        assert isinstance(recorded.message, AttachSampleDisk)
        stored = json.loads(str(row[7]))
        expected = stored["size_bytes"] if row[2] == 2 else 2 * 1024**3
        assert recorded.message.size_bytes == expected
        assert shown["size_bytes"] == expected
