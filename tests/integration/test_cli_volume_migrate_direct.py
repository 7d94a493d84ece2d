"""A direct migration as an operator runs it: two pools one agent reaches (the same host), `strata volume migrate`
copies the volume from one to the other through that agent, with no image store in the zone; the data arrive
whole, the volume keeps its id, the source copy is gone. `--staged` asks for the store, and says when there is none."""

import asyncio
import hashlib
from pathlib import Path

import pytest

from tests.integration.cli_support import CLUSTER, HOST, strata, strata_json
from tests.integration.plugins_qcow2fs_support import guest_write, run

pytestmark = pytest.mark.integration
MIB = 1024 * 1024


async def content_sha256(image: str, scratch: Path) -> str:
    raw = scratch / "content.raw"
    await run("qemu-img", "convert", "-f", "qcow2", "-O", "raw", image, str(raw))
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()
    raw.unlink()
    return digest


async def test_a_volume_moves_directly_between_two_pools_of_one_host(
    strata_env: dict[str, str], tmp_path: Path
) -> None:
    env = strata_env
    placement = ["--scope", "host", "--host", HOST, "--cluster", CLUSTER]
    for name in ("p1", "p2"):
        (tmp_path / name).mkdir()
        await strata_json(env, "pool", "add", name, "--plugin", "qcow2fs", "-c", f"path={tmp_path / name}", *placement)
    created = await strata_json(
        env, "volume", "create", "v1", "8M", "--pool", "p1", "--host", HOST, "--cluster", CLUSTER
    )
    source = (await strata_json(env, "volume", "show", "v1"))["locator"]
    await guest_write(source, 0x5A, 0, 3 * MIB)
    before = await content_sha256(source, tmp_path)

    refused = await strata(env, "volume", "migrate", "v1", "--pool", "p2", "--staged")
    assert refused[0] == 1
    assert "has no image store to stage the copy through" in " ".join(
        refused[1].split()
    )  # the fallback needs the zone's store
    unchanged = await strata_json(env, "volume", "show", "v1")
    assert unchanged["state"] == "Ready"  # the refusal changed nothing

    migrated = await strata_json(env, "volume", "migrate", "v1", "--pool", "p2")
    assert (migrated["method"], migrated["volume_id"]) == ("direct", created["volume_id"])
    shown = await strata_json(env, "volume", "show", "v1")
    assert (shown["state"], shown["pool_id"]) == ("Ready", migrated["pool_id"])
    assert shown["locator"].startswith(str(tmp_path / "p2"))
    assert await content_sha256(shown["locator"], tmp_path) == before
    assert not await asyncio.to_thread(Path(source).exists)  # the source copy is deleted
