"""The console's operator pages in a real browser: a snapshot taken from the snapshots page and followed, the sagas
page, and a dead letter (a malformed pool.add carrying a password) listed, previewed with its password masked,
re-driven and purged."""

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from playwright.async_api import expect

from bus.codec import encode
from schemas import Envelope
from schemas.storage_queries import ListPools
from services.api.keys import Role
from tests.browser.api_stack import CLUSTER, Stack, api_stack
from tests.browser.browser_support import screenshot, signed_in
from tests.helpers import assert_eventually

pytestmark = pytest.mark.e2e
PASSWORD = "Dead-letter-s3cret"


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async with api_stack(database_url, amqp_url, namespace, tmp_path) as running:
        yield running


async def ended(client: httpx.AsyncClient, answer: httpx.Response) -> None:
    assert answer.status_code == 202, answer.text

    async def done() -> bool:
        return bool((await client.get(answer.headers["location"])).json()["status"] == "succeeded")

    await assert_eventually(done, timeout=120, interval=0.1, what="the operation succeeded")


async def test_a_snapshot_taken_from_its_page_and_the_sagas_page(stack: Stack) -> None:
    (stack.pools_dir / "p").mkdir()
    async with stack.client(Role.OPERATOR) as client:
        pool = {"name": "p", "plugin": "qcow2fs", "config": {"path": str(stack.pools_dir / "p")}, "cluster": CLUSTER}
        await ended(client, await client.post("/api/v1/pools", json=pool))
        await ended(client, await client.post("/api/v1/volumes", json={"name": "disk", "size": "16M", "pool": "p"}))
    async with signed_in(stack) as page:
        await page.get_by_role("link", name="Snapshots").click()
        await page.get_by_label("Volume").select_option(label="disk")
        await page.get_by_role("button", name="Snapshot").click()
        await expect(page.locator("#status")).to_contain_text("Done", timeout=90_000)
        await page.get_by_role("link", name="Snapshots").click()
        await expect(page.locator("tbody tr")).to_have_count(1)
        await expect(page.locator("tbody tr")).to_contain_text("disk")
        await screenshot(page, "snapshots")
        await page.get_by_role("link", name="Volumes").click()
        await page.get_by_role("link", name="Snapshot chain of disk").click()
        await expect(page.locator(".chain")).to_contain_text("full disk-")
        await expect(page.locator(".chain")).to_contain_text("live volume")
        await page.get_by_role("link", name="Sagas").click()
        await expect(page.get_by_role("heading", name="Sagas")).to_be_visible()
        await page.get_by_label("Status").select_option("STUCK")
        await page.get_by_role("button", name="Show").click()
        await expect(page.locator("main")).to_contain_text("No saga in STUCK")


async def test_a_dead_letter_previewed_with_its_secret_masked_then_redriven_and_purged(stack: Stack) -> None:
    good = encode(Envelope.wrap(ListPools()))
    body = {"pool_id": "not-a-uuid", "name": "x", "plugin": "qcow2fs", "config": {"password": PASSWORD}}
    poison = replace(good, type="pool.add", message_id=str(uuid.uuid4()), body=json.dumps(body).encode())
    await stack.runner.transport.publish("commands", "pool.add", poison)
    async with stack.client(Role.VIEWER) as client:

        async def dead() -> bool:
            return bool((await client.get("/api/v1/dead-letters")).json())

        await assert_eventually(dead, timeout=30, what="the poison message is dead-lettered")
    async with signed_in(stack) as page:
        await page.get_by_role("link", name="Dead letters").click()
        await expect(page.locator("tbody tr")).to_contain_text("pool.add")
        await page.get_by_role("link", name=poison.message_id[:8]).click()
        await expect(page.locator("main")).to_contain_text("Re-drive preview")
        await expect(page.locator("main")).to_contain_text(".storage")
        assert PASSWORD not in await page.content()
        await screenshot(page, "dead-letter-preview")
        await page.get_by_role("button", name="Re-drive it").click()
        await expect(page.locator("[role=status]")).to_contain_text("re-drove 1")
        await expect(page.locator("tbody tr")).to_contain_text("pool.add", timeout=30_000)  # it dies again
        await page.get_by_role("button", name="Purge all").click()
        await expect(page.locator("[role=status]")).to_contain_text("purged")
        await expect(page.locator("main")).to_contain_text("No dead letter")


async def test_a_saga_timeline_with_its_sequence_diagram_and_an_operator_action_refused(stack: Stack) -> None:
    async with stack.client(Role.OPERATOR) as client:
        for name in ("src", "dst"):
            (stack.pools_dir / name).mkdir()
            pool = {"name": name, "plugin": "qcow2fs", "config": {"path": str(stack.pools_dir / name)}}
            await ended(client, await client.post("/api/v1/pools", json={**pool, "cluster": CLUSTER}))
        await ended(client, await client.post("/api/v1/volumes", json={"name": "v", "size": "1M", "pool": "src"}))
        migrating = await client.post("/api/v1/volumes/v/migrate", json={"pool": "dst"})

        async def finished() -> bool:
            return bool((await client.get(migrating.headers["location"])).json()["status"] != "running")

        await assert_eventually(finished, timeout=120, interval=0.1, what="the migration saga ended")
    async with signed_in(stack) as page:
        for section in ("Templates", "Backups"):
            await page.get_by_role("link", name=section).click()
            await expect(page.get_by_role("heading", level=1)).to_contain_text(section)
        await page.get_by_role("link", name="Sagas").click()
        await page.locator("tbody a").first.click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text("volume.migrate")
        await expect(page.locator("main table").first).to_contain_text("volume.migration.plan")
        await expect(page.locator("figure.diagram svg")).to_be_visible()
        await screenshot(page, "saga-timeline")
        await page.get_by_label("Why (abort)").fill("testing")
        await page.get_by_role("button", name="Abort").click()
        await expect(page.locator("[role=status]")).to_contain_text("refused: cannot abort")
