"""`strata replay export | import | sandbox` on a real journal: an export carries an operation elsewhere, replays in a
sandbox with no difference, and a changed saga is reported at its first divergent step. Bad files are refused,
naming the line, and nothing of them is imported."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from typer.testing import CliRunner

from bus.postgres import create_pool
from services.cli.main import app
from services.orchestrator.bootstrap import DAEMON
from services.replay.export_format import render_lines
from services.runtime.runner import migrate_daemons
from tests.replay.recorder import Reverted, recorded_cloud

pytestmark = pytest.mark.integration


async def _record(database_url: str) -> Reverted:
    async with recorded_cloud(database_url) as cloud:
        return await cloud.revert(fail_on="revert v2")


@pytest.fixture
async def elsewhere(postgres_url: str) -> AsyncIterator[str]:
    """A second database of this test's own, migrated like a deployment's, dropped afterwards."""
    name = f"strata_t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}"))
    pool = await create_pool(url)
    await migrate_daemons(pool, [DAEMON])
    await pool.close()
    yield url
    admin = await asyncpg.connect(postgres_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def _journal_size(url: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM bus.journal"))
    finally:
        await connection.close()


@pytest.fixture
def exported(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Reverted, Path]:
    undone = asyncio.run(_record(database_url))
    monkeypatch.setenv("STRATA_DATABASE_URL", database_url)
    path = tmp_path / "revert.jsonl"
    result = CliRunner().invoke(app, ["replay", "--vm", str(undone.vm_id), "export", str(path)])
    assert result.exit_code == 0, result.output
    return undone, path


def test_an_export_imports_elsewhere_once_and_shows_the_same(
    exported: tuple[Reverted, Path], elsewhere: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    undone, path = exported
    runner = CliRunner()
    here = runner.invoke(app, ["replay", "--vm", str(undone.vm_id), "--json"]).stdout
    header = json.loads(path.read_text().splitlines()[0])
    assert header["format_version"] == 1
    assert header["code_version"].startswith("0.")
    assert header["counts"]["sagas"] == 1

    monkeypatch.setenv("STRATA_DATABASE_URL", elsewhere)
    first = runner.invoke(app, ["replay", "import", str(path)])
    again = runner.invoke(app, ["replay", "import", str(path)])
    there = runner.invoke(app, ["replay", "--vm", str(undone.vm_id), "--json"]).stdout
    timeline = runner.invoke(app, ["replay", "--saga", str(undone.saga_id)])

    assert first.exit_code == 0, first.output
    assert f"imported {header['counts']['messages']} new message(s)" in first.stdout
    assert "imported 0 new message(s)" in again.stdout
    assert there == here
    assert "compensation" in timeline.stdout


def test_the_sandbox_replays_the_export_the_same_and_names_a_changed_sagas_divergent_step(
    exported: tuple[Reverted, Path], postgres_url: str
) -> None:
    _, path = exported
    runner = CliRunner()
    same = runner.invoke(app, ["replay", "sandbox", str(path), "--server", postgres_url])
    changed = runner.invoke(
        app,
        ["replay", "sandbox", str(path), "--server", postgres_url, "--sagas", "tests.replay.altered_revert", "--json"],
    )
    assert same.exit_code == 0, same.output
    assert "1 of 1 saga(s) replay the same" in same.stdout
    assert changed.exit_code == 1, changed.output
    report = json.loads(changed.stdout)
    assert report["first_divergent_step"] == 7
    assert report["differences"][0]["changes"][0]["field"] == "name"
    assert postgres_url not in changed.output


def _records(path: Path) -> list[dict[str, object]]:
    """The export's lines as records, without their hashes (to be chained again by `render_lines`)."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        record.pop("sha256")
    return records


def test_bad_exports_are_refused_naming_the_line_and_nothing_is_imported(
    exported: tuple[Reverted, Path], elsewhere: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, path = exported
    lines = path.read_text().splitlines()
    records = _records(path)
    body = records[1:-1]
    header = {key: value for key, value in records[0].items() if key not in {"kind", "format"}}
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_text("\n".join(lines[:-3]) + "\n" + lines[-3][: len(lines[-3]) // 2])
    cut_at_a_line = tmp_path / "cut.jsonl"
    cut_at_a_line.write_text("\n".join(lines[:-1]) + "\n")
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("\n".join([*lines[:4], lines[4].replace('"step":', '"step":1', 1), *lines[5:]]) + "\n")
    newer = tmp_path / "newer.jsonl"
    newer.write_text("".join(render_lines({**header, "format_version": 2}, body)))
    unknown = tmp_path / "unknown.jsonl"
    stranger = {**body[0], "type": "nobody.knows.this", "message_id": str(uuid.uuid4())}
    unknown.write_text("".join(render_lines(header, [*body[:5], stranger, *body[5:]])))

    monkeypatch.setenv("STRATA_DATABASE_URL", elsewhere)
    runner = CliRunner()
    files = [
        ("truncated", truncated),
        ("cut", cut_at_a_line),
        ("tampered", tampered),
        ("newer", newer),
        ("unknown", unknown),
    ]
    outcomes = {name: runner.invoke(app, ["replay", "import", str(file)]) for name, file in files}
    sandboxed = {name: runner.invoke(app, ["replay", "sandbox", str(file), "--in-memory"]) for name, file in files}

    assert all(result.exit_code == 1 for result in outcomes.values()), {k: r.output for k, r in outcomes.items()}
    said = {name: " ".join(result.stdout.split()) for name, result in outcomes.items()}
    refusals = {
        "truncated": f"line {len(lines) - 2}: not a JSON object",
        "cut": f"line {len(lines) - 1}: the file ends without its end line",
        "tampered": "line 5: the line was changed",
        "newer": "line 1: format version 2 is newer than this strata reads (1)",
        "unknown": "line 7: unknown message type 'nobody.knows.this'",
    }
    for name, refusal in refusals.items():
        assert refusal in said[name], (name, said[name])
    # the sandbox reads the whole file before it replays anything: the same refusals, nothing replayed
    for name, result in sandboxed.items():
        assert result.exit_code == 1, result.output
        assert refusals[name] in " ".join(result.stdout.split()), (name, result.stdout)
        assert "saga(s) replay" not in result.stdout
    assert asyncio.run(_journal_size(elsewhere)) == 0
