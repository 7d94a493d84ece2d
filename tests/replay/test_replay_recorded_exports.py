"""Every recorded export in tests/replay/exports replays in a sandbox against this commit's code with no difference.

They are the demo's operations (VM snapshot, revert, backups, restore, migration, coalesce) as `strata demo` ran
them on the real servers, and a revert that failed and compensated (tests/replay/recorder.py). A saga change that
alters what they send fails here with the diff, field by field, and the first divergent step. A deliberate change
re-records: run `strata demo` with STRATA_AMQP_URL and STRATA_DATABASE_URL (a database of its own), then
`strata replay --saga ID export tests/replay/exports/NAME.jsonl` for each saga in `sagas.instances`.
"""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli.main import app

pytestmark = pytest.mark.integration
EXPORTS = sorted((Path(__file__).parent / "exports").glob("*.jsonl"))


def test_the_recorded_operations_are_all_here() -> None:
    names = {path.stem for path in EXPORTS}
    assert {"revert_vm", "revert_vm_compensated", "snapshot_vm", "migrate_volume", "coalesce_chain"} <= names
    assert {"backup_create_1", "backup_restore"} <= names


@pytest.mark.parametrize("export", EXPORTS, ids=[path.stem for path in EXPORTS])
def test_a_recorded_operation_replays_with_no_difference(export: Path, postgres_url: str) -> None:
    result = CliRunner().invoke(
        app, ["replay", "sandbox", str(export), "--server", postgres_url], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, f"{export.name} no longer replays the same:\n{result.output}"
    assert "1 of 1 saga(s) replay the same" in result.stdout


def test_the_in_memory_sandbox_gives_the_same_verdicts() -> None:
    compensated = Path(__file__).parent / "exports" / "revert_vm_compensated.jsonl"
    runner = CliRunner()
    same = runner.invoke(app, ["replay", "sandbox", str(compensated), "--in-memory"])
    changed = runner.invoke(
        app, ["replay", "sandbox", str(compensated), "--in-memory", "--sagas", "tests.replay.altered_revert", "--json"]
    )
    assert same.exit_code == 0, same.output
    assert changed.exit_code == 1, changed.output
    assert json.loads(changed.stdout)["first_divergent_step"] == 7
