"""The sandbox's data plane: the recorded migration's pools start on temporary directories (qcow2fs, its masked path
replaced), and the agent's delete of the source volume is answered by this code's agent and plugin, not by the
recording. A change to that code shows at its step; a pool whose plugin cannot start there keeps its recorded
replies; the in-memory sandbox keeps every recorded reply."""

import json
from pathlib import Path

import pytest

from plugins.qcow2fs.driver import Qcow2fsDriver
from plugins.sdk import faults
from schemas.errors import FailedPrecondition
from services.replay.code import load_code
from services.replay.export_format import parse_export, read_export, render_lines
from services.replay.sandbox import SagaVerdict, Sandbox, sandbox_store

pytestmark = pytest.mark.integration
MIGRATION = Path(__file__).parent / "exports" / "migrate_volume.jsonl"
SOURCE_POOL = "7662e19e-ec70-4534-b610-9ff874044669"


async def _replay(postgres_url: str, path: Path = MIGRATION) -> SagaVerdict:
    load_code()
    async with sandbox_store(postgres_url) as store:
        (verdict,) = await Sandbox(store).replay(read_export(path))
    return verdict


async def test_the_agents_delete_runs_on_the_source_pool_on_a_temporary_directory(postgres_url: str) -> None:
    made_before = faults.hits("qcow2fs.volume.before_publish")
    verdict = await _replay(postgres_url)
    assert verdict.same, verdict.as_json()
    assert verdict.data_plane == [
        f"step 11: agent.volume.delete on pool {SOURCE_POOL} (qcow2fs, temporary directory) -> agent.volume.deleted"
    ]
    # the volume the delete expects was made first, by the real plugin on the temporary directory
    assert faults.hits("qcow2fs.volume.before_publish") == made_before + 1
    # the agent's answer is compared with the recorded one, beside the saga's own messages
    assert any(entry.type == "agent.volume.deleted" for entry in verdict.diff.entries)


async def test_a_change_in_the_plugins_code_shows_at_its_step(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuses(self: Qcow2fsDriver, volume_id: str) -> None:
        raise FailedPrecondition(f"volume {volume_id} is still in use")

    monkeypatch.setattr(Qcow2fsDriver, "delete_volume", refuses)
    verdict = await _replay(postgres_url)
    assert not verdict.same
    assert verdict.first_divergent_step == 11
    assert verdict.data_plane[0].endswith("-> saga.step.failed")
    missing = [entry.type for entry in verdict.diff.entries if entry.verdict.value == "missing"]
    assert "agent.volume.deleted" in missing


async def test_a_pool_whose_plugin_cannot_start_here_keeps_its_recorded_replies(
    postgres_url: str, tmp_path: Path
) -> None:
    records = [json.loads(line) for line in MIGRATION.read_text().splitlines()]
    for record in records:
        record.pop("sha256")
        if record["kind"] == "plugin_config" and record["plugin"] == "qcow2fs":
            record["plugin"] = "vendor-array"  # not installed here
    header = {key: value for key, value in records[0].items() if key not in {"kind", "format", "format_version"}}
    elsewhere = tmp_path / "migration_on_an_array.jsonl"
    elsewhere.write_text("".join(render_lines(header, records[1:-1])))

    verdict = await _replay(postgres_url, elsewhere)
    assert verdict.same, verdict.as_json()
    (outside,) = verdict.data_plane
    assert outside.startswith(f"pool {SOURCE_POOL} (vendor-array) stays outside: no plugin named 'vendor-array'")


async def test_the_in_memory_sandbox_answers_from_the_recording() -> None:
    load_code()
    export = parse_export(MIGRATION.read_text().splitlines())
    (verdict,) = await Sandbox(None).replay(export)
    assert verdict.same
    assert verdict.data_plane == []
