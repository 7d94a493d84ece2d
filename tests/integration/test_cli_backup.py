"""`strata backup-repo` and `strata backup` as a user runs them (subprocesses) against every service, the backup
service included, on RabbitMQ and PostgreSQL."""

import json
from pathlib import Path

import pytest

from tests.integration.backup_support import HOST, MIB, BackupStack, backup_stack
from tests.integration.cli_support import strata, strata_json
from tests.integration.test_backup_service import _write_random

pytestmark = pytest.mark.integration
__all__ = ["backup_stack"]


@pytest.fixture
def env(backup_stack: BackupStack, amqp_url: str, namespace: str, database_url: str) -> dict[str, str]:
    import os

    environment = dict(os.environ)
    environment.update(
        STRATA_AMQP_URL=amqp_url, STRATA_NAMESPACE=namespace, STRATA_DATABASE_URL=database_url, COLUMNS="200"
    )
    return environment


async def test_backup_commands(backup_stack: BackupStack, env: dict[str, str], tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    code, out = await strata(env, "backup-repo", "add", "nightly", "--plugin", "fsbackup", "-c", "path=relative")
    assert code == 1
    assert "path" in out  # the plugin's model refuses it before anything is sent
    zone = ["--zone", str(backup_stack.zone_id)]
    added = await strata_json(
        env, "backup-repo", "add", "nightly", "--plugin", "fsbackup", "-c", f"path={store}", *zone
    )
    assert added["name"] == "nightly"
    assert [repo["name"] for repo in (await strata_json(env, "backup-repo", "list"))["repositories"]] == ["nightly"]

    volume = await backup_stack.create_volume(8 * MIB)
    await _write_random(backup_stack.paths[volume], 0, 4 * MIB, tmp_path)
    code, out = await strata(env, "backup", "create", str(volume), "--repo", "nightly")
    assert code == 0, out
    assert "reused" in out
    assert "read 4.0 MiB" in out
    schedule = ["--repo", "nightly", "--interval", "daily", "--timezone", "Europe/Paris", "--max-backups", "3"]
    code, out = await strata(env, "backup-schedule", "create", str(volume), *schedule, "--schedule", "30:25")
    assert code == 1
    assert "schedule" in out  # refused before anything is sent: there is no hour 25
    created = await strata_json(env, "backup-schedule", "create", str(volume), *schedule, "--schedule", "30:02")
    assert created["interval_type"] == "DAILY"
    listed_schedules = (await strata_json(env, "backup-schedule", "list", "--volume", str(volume)))["schedules"]
    assert [row["schedule"] for row in listed_schedules] == ["30:02"]
    assert (await strata_json(env, "backup-schedule", "delete", created["schedule_id"]))["schedule_id"]
    # No --repo: the one repository of the volume's zone. Keep rules without --max-backups: the rules alone decide.
    code, out = await strata(
        env, "backup-schedule", "create", str(volume), "--interval", "hourly", "--schedule", "15", "--keep-last", "3"
    )
    assert code == 0, out
    assert "into repository nightly" in out
    assert "keeps by keep-last 3" in out
    ruled = (await strata_json(env, "backup-schedule", "list", "--volume", str(volume)))["schedules"]
    assert [(row["max_backups"], json.loads(row["keep"])["last"]) for row in ruled] == [(1, 3)]
    assert (await strata_json(env, "backup-schedule", "delete", ruled[0]["schedule_id"]))["schedule_id"]

    listed = (await strata_json(env, "backup", "list", "--volume", str(volume)))["backups"]
    assert [(row["kind"], row["state"]) for row in listed] == [("full", "BackedUp")]
    backup_id = listed[0]["backup_id"]

    verified = await strata_json(env, "backup", "verify", backup_id)
    assert verified["bad"] == []
    restored = await strata_json(env, "backup", "restore", backup_id, "--name", "copy", "--host", HOST)
    assert restored["in_place"] is False
    assert await backup_stack.checksum(volume) == await backup_stack.checksum_of_restored(restored["volume_id"])

    for _ in range(2):
        assert (await strata(env, "backup", "create", str(volume)))[0] == 0  # the zone's one repository
    by_name = (await strata_json(env, "backup", "list", "--volume", f"vol-{volume.hex[:8]}"))["backups"]
    assert [row["backup_id"] for row in by_name][-1] == backup_id  # the volume by its name
    keep = ["--volume", str(volume), "--keep-last", "1"]
    planned = await strata_json(env, "backup", "prune", *keep, "--dry-run")
    assert [row["kept_by"] for row in planned["backups"]] == ["last", None, None]
    assert backup_id == planned["backups"][-1]["backup_id"]
    assert len((await strata_json(env, "backup", "list", "--volume", str(volume)))["backups"]) == 3  # dry run
    await strata_json(env, "backup", "prune", *keep)
    remaining = (await strata_json(env, "backup", "list", "--volume", str(volume)))["backups"]
    assert [row["backup_id"] for row in remaining] == [planned["backups"][0]["backup_id"]]

    code, out = await strata(env, "backup-repo", "remove", "nightly")
    assert code == 1
    assert "still holds 1 backup" in out
    newest = remaining[0]["backup_id"]
    assert (await strata_json(env, "backup", "delete", newest))["backup_id"] == newest
    code, out = await strata(env, "backup-repo", "remove", "nightly")
    assert code == 0, out
