"""`strata pool show` and `strata pool update` as an operator types them (subprocesses against every service)."""

from pathlib import Path

import pytest

from tests.integration.cli_support import CLUSTER, HOST, strata, strata_json

pytestmark = pytest.mark.integration


async def test_an_operator_reads_and_changes_a_pools_settings(strata_env: dict[str, str], tmp_path: Path) -> None:
    env = strata_env
    placement = ["--scope", "host", "--host", HOST, "--cluster", CLUSTER]
    added = await strata_json(
        env,
        "pool",
        "add",
        "p1",
        "--plugin",
        "qcow2fs",
        "-c",
        f"path={tmp_path}",
        *placement,
        "--capacity-threshold",
        "0.9",
    )
    code, shown = await strata(env, "pool", "show", "p1")
    assert code == 0, shown
    assert f"path: {tmp_path}" in shown
    assert "capacity_disable_threshold: 0.9" in shown

    code, said = await strata(env, "pool", "update", "p1", "-c", "qemu_img_timeout_seconds=120", "--tag", "gold")
    assert code == 0, said
    assert "pool p1 updated: qemu_img_timeout_seconds, tags" in said
    pool = await strata_json(env, "pool", "show", added["pool_id"])
    assert (pool["config"]["qemu_img_timeout_seconds"], pool["tags"]) == (120.0, ["gold"])

    code, said = await strata(env, "pool", "update", "p1", "-c", f"path={tmp_path}/elsewhere")
    assert code == 1
    assert "cannot change once the pool is added" in said
    code, said = await strata(env, "pool", "update", "p1", "--allocated-threshold", "1.5")
    assert code == 1
    assert "allocated_capacity_disable_threshold" in said
    code, said = await strata(env, "pool", "update", "p1")
    assert code == 1
    assert "changes something" in said
    code, said = await strata(env, "pool", "update", "p1", "--default-thresholds")
    assert code == 0, said
    assert (await strata_json(env, "pool", "show", "p1"))["thresholds"] is None
