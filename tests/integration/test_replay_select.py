"""`strata replay` selects from a real journal (a revert saga recorded by the real orchestrator) and shows it."""

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from schemas.snapshot import VmReverted, VmRevertFailed
from services.cli.main import app
from tests.replay.recorder import Reverted, recorded_cloud

pytestmark = pytest.mark.integration


async def _record(database_url: str) -> tuple[Reverted, Reverted]:
    async with recorded_cloud(database_url) as cloud:
        done = await cloud.revert()
        undone = await cloud.revert(fail_on="revert v2")
    return done, undone


@pytest.fixture
def recorded(database_url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Reverted, Reverted]:
    monkeypatch.setenv("STRATA_DATABASE_URL", database_url)
    return asyncio.run(_record(database_url))


def _json(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_filters_select_operations_and_combine(recorded: tuple[Reverted, Reverted]) -> None:
    done, undone = recorded
    assert isinstance(done.outcome, VmReverted)
    assert isinstance(undone.outcome, VmRevertFailed)
    runner = CliRunner()

    by_vm = _json(runner.invoke(app, ["replay", "--vm", str(undone.vm_id), "--json"]).output)
    by_volume = _json(runner.invoke(app, ["replay", "--volume", str(undone.volumes[1]), "--json"]).output)
    naming = _json(runner.invoke(app, ["replay", "--volume", str(undone.volumes[1]), "--naming-only", "--json"]).output)
    by_saga = _json(runner.invoke(app, ["replay", "--saga", str(done.saga_id), "--json"]).output)
    compensated = _json(runner.invoke(app, ["replay", "--status", "compensated", "--json"]).output)
    failed_steps = _json(
        runner.invoke(app, ["replay", "--status", "failed", "--type", "saga.step.failed", "--json"]).output
    )
    by_service = _json(
        runner.invoke(app, ["replay", "--service", "fake-cloud", "--saga", str(done.saga_id), "--json"]).output
    )

    assert {line["correlation_id"] for line in by_vm} == {str(undone.correlation_id)}
    # the volume is named by both operations (the same fake cloud's volumes): both, whole
    assert {line["correlation_id"] for line in by_volume} == {str(done.correlation_id), str(undone.correlation_id)}
    assert naming
    assert all(str(undone.volumes[1]) in json.dumps(line["payload"]) for line in naming)
    assert len(naming) < len(by_volume)
    assert {line["saga_id"] for line in by_saga} == {str(done.saga_id)}
    assert {line["correlation_id"] for line in compensated} == {str(undone.correlation_id)}
    assert [line["type"] for line in failed_steps] == ["saga.step.failed"]
    assert by_service
    assert {line["producer"] for line in by_service} == {"fake-cloud@test"}


def test_pages_follow_one_another_without_gaps(recorded: tuple[Reverted, Reverted]) -> None:
    runner = CliRunner()
    everything = _json(runner.invoke(app, ["replay", "--json", "--limit", "1000"]).output)
    seen: list[dict[str, object]] = []
    after: list[str] = []
    while True:
        result = runner.invoke(app, ["replay", "--json", "--limit", "7", *after])
        assert result.exit_code == 0, result.output
        seen += _json(result.stdout)
        more = [line for line in result.stderr.splitlines() if "--after" in line]
        if not more:
            break
        after = ["--after", more[0].split("--after ", 1)[1].strip()]
    assert [line["message_id"] for line in seen] == [line["message_id"] for line in everything]


def test_the_timeline_tree_and_diagram_show_the_compensation(
    recorded: tuple[Reverted, Reverted], tmp_path: Path
) -> None:
    _, undone = recorded
    runner = CliRunner()
    diagram = tmp_path / "revert.html"

    table = runner.invoke(app, ["replay", "--saga", str(undone.saga_id), "--diagram", str(diagram)])
    tree = runner.invoke(app, ["replay", "--saga", str(undone.saga_id), "--tree"])
    mermaid = runner.invoke(app, ["replay", "--saga", str(undone.saga_id), "--mermaid"])

    assert table.exit_code == 0, table.output
    assert "compensation" in table.stdout
    assert "failure" in table.stdout
    assert "snapshot.revert" in tree.stdout
    assert mermaid.stdout.startswith("sequenceDiagram")
    assert "orchestrator" in mermaid.stdout
    assert "fake-cloud" in mermaid.stdout
    page = diagram.read_text()
    assert "<svg" in page
    assert "<script" not in page
    assert "snapshot.revert" in page


def test_bad_filters_are_refused_naming_the_option(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATA_DATABASE_URL", database_url)
    runner = CliRunner()
    bad_id = runner.invoke(app, ["replay", "--volume", "nope"])
    bad_status = runner.invoke(app, ["replay", "--status", "exploded"])
    bad_cursor = runner.invoke(app, ["replay", "--after", "yesterday"])
    not_migrated = runner.invoke(app, ["replay"])
    assert bad_id.exit_code == 2
    assert "--volume" in bad_id.output
    assert bad_status.exit_code == 2
    assert "--status" in bad_status.output
    assert bad_cursor.exit_code == 2
    assert "--after" in bad_cursor.output
    assert not_migrated.exit_code == 1
    assert "migrations" in not_migrated.output
    assert database_url not in not_migrated.output
