"""`strata replay redrive`: a preview first (what, how many, to which queues), nothing sent without --execute; then
the command goes out again through the outbox under a new id, and the re-drive is journaled as an operator action."""

import asyncio
import json

import asyncpg
import pytest
from typer.testing import CliRunner

from services.cli.main import app
from tests.replay.recorder import Reverted, recorded_cloud

pytestmark = pytest.mark.integration


async def _record(database_url: str) -> Reverted:
    async with recorded_cloud(database_url) as cloud:
        return await cloud.revert(fail_on="revert v2")


async def _count(database_url: str, query: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        return int(await connection.fetchval(query))
    finally:
        await connection.close()


def test_a_failed_command_is_previewed_then_sent_again_and_journaled(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    undone = asyncio.run(_record(database_url))
    monkeypatch.setenv("STRATA_DATABASE_URL", database_url)
    monkeypatch.setenv("STRATA_NAMESPACE", "live")
    runner = CliRunner()
    failed_step = next(
        json.loads(line)
        for line in runner.invoke(
            app, ["replay", "--saga", str(undone.saga_id), "--type", "saga.step.failed", "--json"]
        ).stdout.splitlines()
    )
    command_id = failed_step["causation_id"]
    outbox_before = asyncio.run(_count(database_url, "SELECT count(*) FROM bus.outbox"))

    preview = runner.invoke(app, ["replay", "--message", command_id, "redrive"], env={"COLUMNS": "200"})
    assert preview.exit_code == 0, preview.output
    assert "snapshot.revert" in preview.stdout
    assert "live.snapshot" in preview.stdout  # the snapshot service's queue in namespace `live`
    assert "nothing sent" in preview.stdout
    assert asyncio.run(_count(database_url, "SELECT count(*) FROM bus.outbox")) == outbox_before

    sent = runner.invoke(
        app, ["replay", "--message", command_id, "redrive", "--execute", "--operator", "ops", "--reason", "fixed"]
    )
    assert sent.exit_code == 0, sent.output
    assert "queued 1 command(s)" in sent.stdout
    assert asyncio.run(_count(database_url, "SELECT count(*) FROM bus.outbox")) == outbox_before + 1
    journaled = [
        json.loads(line)
        for line in runner.invoke(app, ["replay", "--type", "replay.redriven", "--json"]).stdout.splitlines()
    ]
    assert len(journaled) == 1
    assert journaled[0]["producer"] == "replay@ops"
    assert journaled[0]["payload"]["commands"] == [command_id]
    again = journaled[0]["payload"]["sent_as"][0]
    resent = json.loads(runner.invoke(app, ["replay", "--message", again, "--json"]).stdout)
    assert resent["type"] == "snapshot.revert"
    assert resent["causation_id"] == command_id


def test_an_event_only_or_too_large_redrive_is_refused(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    undone = asyncio.run(_record(database_url))
    monkeypatch.setenv("STRATA_DATABASE_URL", database_url)
    runner = CliRunner()
    events_only = runner.invoke(app, ["replay", "--saga", str(undone.saga_id), "--type", "saga.step.failed", "redrive"])
    everything = runner.invoke(app, ["replay", "redrive"])
    assert events_only.exit_code == 1
    assert "nothing to re-drive" in events_only.stdout
    assert everything.exit_code == 2
    assert "give at least one filter" in everything.output
