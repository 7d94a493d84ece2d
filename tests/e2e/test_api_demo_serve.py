"""`strata demo --serve` as a user runs it: the story, then the console and the API on the demo's system, with an
admin key printed for it, until Ctrl-C."""

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
STRATA = str(Path(sys.executable).parent / "strata")
STORY_SECONDS = 600.0  # an upper bound on a loaded machine, not an expected duration


async def test_demo_serve_tells_its_story_then_serves_the_console_until_ctrl_c() -> None:
    env = {key: value for key, value in os.environ.items() if key not in ("STRATA_AMQP_URL", "STRATA_DATABASE_URL")}
    env.update(STRATA_API_PORT="0", COLUMNS="200")
    process = await asyncio.create_subprocess_exec(
        STRATA, "demo", "--serve", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    assert process.stdout is not None
    told: list[str] = []
    try:
        async with asyncio.timeout(STORY_SECONDS):
            while not told or "Ctrl-C stops" not in told[-1]:
                line = (await process.stdout.readline()).decode()
                assert line, "".join(told)
                told.append(line)
        output = "".join(told)
        assert "demo passed" in output
        url = re.search(r"web console: (http://127\.0\.0\.1:\d+/)", output)
        key = re.search(r"strata_[A-Za-z0-9_-]{20,}", output)
        assert url is not None, output
        assert key is not None, output
        async with httpx.AsyncClient(base_url=url.group(1), timeout=30) as client:
            pools = await client.get("/api/v1/pools", headers={"Authorization": f"Bearer {key.group(0)}"})
            assert pools.status_code == 200
            assert [pool["state"] for pool in pools.json() if pool["name"] == "demo-pool"] == ["Up"]
            assert (await client.get("/pools")).status_code == 303  # the console: sign in first
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(process.wait(), 120) == 0
