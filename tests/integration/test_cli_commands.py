"""The operator CLI as a user runs it (a subprocess) against every service on RabbitMQ and PostgreSQL.

The services run in this test's process (services/stack, as `strata up` runs them) in the test's namespace and
database; each `strata` command is a process of its own, pointed at them by STRATA_* variables.
"""

import os
from pathlib import Path

import pytest

from tests.integration.cli_support import CLUSTER, HOST, strata, strata_json

pytestmark = pytest.mark.integration


async def test_pool_volume_and_snapshot_life_cycle(strata_env: dict[str, str], tmp_path: Path) -> None:
    env = strata_env
    placement = ["--scope", "host", "--host", HOST, "--cluster", CLUSTER]
    added = await strata_json(env, "pool", "add", "p1", "--plugin", "qcow2fs", "-c", f"path={tmp_path}", *placement)
    assert added["name"] == "p1"
    assert "config" not in added

    pools = await strata_json(env, "pool", "list")
    assert [(pool["name"], pool["state"]) for pool in pools] == [("p1", "Up")]

    created = await strata_json(env, "volume", "create", "v1", "16M", "--host", HOST, "--cluster", CLUSTER)
    assert created["pool_id"] == added["pool_id"]
    shown = await strata_json(env, "volume", "show", "v1")
    assert (shown["state"], shown["size_bytes"]) == ("Ready", 16 * 1024 * 1024)

    code, output = await strata(env, "pool", "delete", "p1")
    assert code == 1
    assert "FailedPrecondition" in output
    assert "still holds 1 volume" in output
    assert (await strata_json(env, "pool", "show", "p1"))["state"] == "Up"  # the refusal changed nothing

    snapshot = await strata_json(env, "snapshot", "create", "v1", "--name", "s1")
    listed = await strata_json(env, "snapshot", "list", "--volume", created["volume_id"])
    assert [row["snapshot_id"] for row in listed["snapshots"]] == [snapshot["snapshot_id"]]
    assert (await strata_json(env, "snapshot", "list", "--volume", "v1")) == listed  # by the volume's name
    code, output = await strata(env, "snapshot", "list")
    assert code == 0, output
    row = next(line for line in output.splitlines() if snapshot["snapshot_id"] in line)
    assert row.split()[1:3] == ["s1", "v1"]  # the volume by its name, the line whole (a pipe is not cut at 80)
    code, output = await strata(env, "snapshot", "list", "--volume", "v9")
    assert code == 1
    assert "no volume 'v9'" in output

    policy = await strata_json(
        env, "snapshot-policy", "create", "v1", "--interval", "DAILY", "--schedule", "30:02", "--max-snaps", "3"
    )
    policies = await strata_json(env, "snapshot-policy", "list")
    assert [row["policy_id"] for row in policies["policies"]] == [policy["policy_id"]]
    await strata_json(env, "snapshot-policy", "delete", policy["policy_id"])

    resized = await strata_json(env, "volume", "resize", "v1", "32M")
    assert resized["new_size_bytes"] == 32 * 1024 * 1024

    code, output = await strata(env, "snapshot", "delete", "s9")
    assert code == 1
    assert "no snapshot named 's9'" in output
    deleted = await strata_json(env, "snapshot", "delete", "s1")  # by its name
    assert deleted["snapshot_id"] == snapshot["snapshot_id"]
    await strata_json(env, "volume", "delete", "v1")
    assert (await strata_json(env, "pool", "disable", "p1"))["state"] == "Disabled"
    assert (await strata_json(env, "pool", "enable", "p1"))["state"] == "Up"
    assert (await strata_json(env, "pool", "disable", "p1"))["state"] == "Disabled"  # a pool is deleted disabled
    assert (await strata_json(env, "pool", "delete", "p1"))["state"] == "Removed"


async def test_a_listing_before_any_service_created_its_tables_is_a_clear_error(database_url: str) -> None:
    # The test's own database, with nothing migrated in it: no service has ever started against it.
    env = {**os.environ, "STRATA_DATABASE_URL": database_url}
    for listing in (["snapshot", "list"], ["snapshot-policy", "list"]):
        code, out = await strata(env, *listing)

        assert code == 1, out
        assert "FailedPrecondition" in out
        assert "does not exist" in out
        assert "Traceback" not in out
