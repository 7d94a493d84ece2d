"""A template made from a volume, then a volume made from it, as an operator types them (subprocesses against every
service): the first volume from a template copies it onto the pool (a bar of bytes while it does), the next ones
reuse the pool's base copy, and each holds the template's content."""

from pathlib import Path

import pytest

from tests.e2e.cloud_support import holds_mib
from tests.integration.cli_support import CLUSTER, HOST, strata, strata_json
from tests.integration.plugins_qcow2fs_support import guest_write

pytestmark = pytest.mark.integration
MIB = 1 << 20


async def test_volumes_from_a_template_made_from_a_volume(strata_env: dict[str, str], tmp_path: Path) -> None:
    env = strata_env
    placement = ["--host", HOST, "--cluster", CLUSTER]
    for name in ("pool", "store"):
        (tmp_path / name).mkdir()
    await strata_json(env, "pool", "add", "p1", "--plugin", "qcow2fs", "-c", f"path={tmp_path / 'pool'}", *placement)
    code, said = await strata(
        env, "image-store", "add", "s1", "--plugin", "fsbackup", "-c", f"path={tmp_path / 'store'}"
    )
    assert code == 0, said
    await strata_json(env, "volume", "create", "golden", "8M", *placement)
    golden = (await strata_json(env, "volume", "show", "golden"))["locator"]
    await guest_write(golden, 0x4D, 0, 2 * MIB)
    code, said = await strata(env, "template", "create", "golden-tpl", "--volume", "golden")
    assert code == 0, said

    for name in ("web-1", "web-2"):
        code, said = await strata(env, "volume", "create", name, "8M", "--template", "golden-tpl", *placement)
        assert code == 0, said
        assert f"volume {name}" in said
        assert "Ready" in said
        locator = (await strata_json(env, "volume", "show", name))["locator"]
        assert await holds_mib(locator, 0x4D, 2)
