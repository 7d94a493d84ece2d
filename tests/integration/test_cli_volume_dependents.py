"""A volume's snapshots and policies, and its VM, as an operator meets them: deleting a volume that has snapshots or
policies is refused naming them (nothing deleted) unless --cascade; a volume is only attached to a VM the agents'
hypervisors report (by id or by name)."""

import uuid
from pathlib import Path

import pytest

from tests.integration.cli_support import CLUSTER, HOST, strata, strata_json

pytestmark = pytest.mark.integration


async def test_a_volume_with_snapshots_or_policies_is_deleted_only_with_cascade(
    strata_env: dict[str, str], tmp_path: Path
) -> None:
    env = strata_env
    placement = ["--host", HOST, "--cluster", CLUSTER]
    await strata_json(env, "pool", "add", "p1", "--plugin", "qcow2fs", "-c", f"path={tmp_path}", *placement)
    await strata_json(env, "volume", "create", "v1", "16M", *placement)
    await strata_json(env, "snapshot", "create", "v1", "--name", "s1")
    await strata_json(env, "snapshot-policy", "create", "v1", "--interval", "DAILY", "--schedule", "30:02")

    code, output = await strata(env, "volume", "delete", "v1")
    assert code == 1, output
    said = " ".join(output.split())
    assert "volume v1 has 1 snapshot(s) (s1) and 1 snapshot policy(ies) (DAILY 30:02)" in said
    assert "--cascade" in said
    assert (await strata_json(env, "volume", "show", "v1"))["state"] == "Ready"  # nothing was deleted

    await strata_json(env, "volume", "delete", "v1", "--cascade")
    assert (await strata_json(env, "snapshot-policy", "list"))["policies"] == []
    assert await strata_json(env, "volume", "list") == []


async def test_a_volume_is_attached_only_to_a_vm_a_host_reports(strata_env: dict[str, str], tmp_path: Path) -> None:
    env = strata_env
    placement = ["--host", HOST, "--cluster", CLUSTER]
    await strata_json(env, "pool", "add", "p1", "--plugin", "qcow2fs", "-c", f"path={tmp_path}", *placement)
    ghost = str(uuid.uuid4())
    code, output = await strata(env, "volume", "create", "v1", "16M", *placement, "--vm", ghost)
    assert code == 1, output
    assert f"no registered host knows VM {ghost}" in output
    assert await strata_json(env, "volume", "list") == []

    test_vm = next(vm for vm in (await strata_json(env, "vm", "list"))["vms"] if vm["name"] == "test")
    created = await strata_json(env, "volume", "create", "v2", "16M", *placement, "--vm", "test")
    assert created["vm_id"] == test_vm["vm_id"]
    on_pool = await strata_json(env, "volume", "create", "v3", "16M", *placement, "--vm", "test", "--pool", "p1")
    assert on_pool["vm_id"] == test_vm["vm_id"]  # naming the pool kept the VM
    by_vm = await strata_json(env, "volume", "create", "v4", "16M", "--vm", "test", "--pool", "p1")
    assert by_vm["vm_id"] == test_vm["vm_id"]  # the VM's host is where its volume goes: no --host needed
    code, output = await strata(env, "volume", "create", "v5", "16M", "--vm", "test", "--host", "elsewhere")
    assert code == 1, output
