"""The console's forms in a real browser: a volume resized (a bad size shown on its field first), a snapshot policy
created (a bad schedule on its field) and deleted, a backup taken and restored to a new volume and in place; a
template registered from a URL (a bad URL on its field), an image store added from its plugin's form, and a pool's
settings changed (a bad threshold on its field, the password typed not written back). Each saves a screenshot."""

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from services.api.keys import Role
from services.cli.file_server import serve_file
from tests.browser.api_stack import CLUSTER, Stack, add_pool, add_repository, api_stack, succeeded
from tests.browser.browser_support import screenshot, signed_in
from tests.helpers import assert_eventually

pytestmark = pytest.mark.e2e
PASSWORD = "Filer-s3cret-kept-sealed"
NEW_PASSWORD = "Filer-new-s3cret-never-echoed"


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async with api_stack(database_url, amqp_url, namespace, tmp_path) as running:
        yield running


async def done(page: Page) -> None:
    """The operation page says the operation succeeded (it reloads itself at the end)."""
    await expect(page.locator("#status")).to_contain_text("Done", timeout=90_000)


async def test_a_volume_resized_a_policy_made_and_a_backup_restored_from_the_forms(stack: Stack) -> None:
    async with stack.client(Role.OPERATOR) as client:
        await add_pool(client, stack, "p")
        await add_repository(client, stack, "repo")
        await succeeded(client, await client.post("/api/v1/volumes", json={"name": "data", "size": "8M", "pool": "p"}))
    async with signed_in(stack) as page:
        await page.get_by_role("link", name="Volumes").click()
        await page.get_by_role("link", name="data", exact=True).click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text("Volume data")

        size = page.get_by_label("New size")
        await size.fill("lots")
        await page.get_by_role("button", name="Resize volume").click()
        await expect(page.locator("#resize-size-error")).to_contain_text("is not a size")
        await expect(size).to_have_attribute("aria-invalid", "true")
        await expect(size).to_have_value("lots")
        await size.fill("16M")
        await page.get_by_role("button", name="Resize volume").click()
        await done(page)
        await page.goto(f"{stack.base_url}/volumes/data")
        await expect(page.locator("main p").first).to_contain_text("16.0 MiB")

        await page.get_by_label("Interval").select_option("DAILY")
        await page.get_by_label("Schedule").fill("99")
        await page.get_by_role("button", name="Create policy").click()
        await expect(page.locator("#policy-schedule-error")).to_be_visible()
        await expect(page.get_by_label("Schedule")).to_have_attribute("aria-invalid", "true")
        await page.get_by_label("Schedule").fill("30:02")
        await page.get_by_label("Time zone").fill("Europe/Paris")
        await page.get_by_role("button", name="Create policy").click()
        await done(page)
        await page.goto(f"{stack.base_url}/volumes/data")
        await expect(page.locator("table").first).to_contain_text("30:02")

        await page.get_by_label("Backup repository").select_option("repo")
        await page.get_by_role("button", name="Back up volume").click()
        await done(page)
        await page.goto(f"{stack.base_url}/volumes/data")
        await screenshot(page, "volume-forms")
        await page.get_by_role("button", name="Delete the DAILY policy 30:02").click()
        await done(page)
        await page.goto(f"{stack.base_url}/volumes/data")
        await expect(page.locator("main")).to_contain_text("No snapshot policy")

        await page.get_by_role("link", name="Backups").click()
        await page.locator("a", has_text="Restore").first.click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text("Restore backup")
        await page.get_by_label("New volume name").fill("data-copy")
        await page.get_by_label("Pool", exact=True).select_option("p")
        await screenshot(page, "backup-restore")
        await page.get_by_role("button", name="Restore to a new volume").click()
        await done(page)
        await page.go_back()
        await expect(page.get_by_label("Volume to overwrite")).to_have_value("data")
        await page.get_by_role("button", name="Restore in place").click()
        await done(page)
        await page.get_by_role("link", name="Volumes").click()
        await expect(page.locator("tr[data-volume=data-copy]")).to_contain_text("Ready")


async def test_a_template_registered_a_store_added_and_pool_settings_changed_from_the_forms(
    stack: Stack, tmp_path: Path
) -> None:
    (stack.pools_dir / "p").mkdir()
    (stack.pools_dir / "store").mkdir()
    async with stack.client(Role.OPERATOR) as client:
        config = {"path": str(stack.pools_dir / "p"), "server": "192.0.2.7", "username": "u", "password": PASSWORD}
        pool = {"name": "p", "plugin": "netfs", "config": config, "cluster": CLUSTER}
        await succeeded(client, await client.post("/api/v1/pools", json=pool))
    image = tmp_path / "tiny.qcow2"
    await asyncio.to_thread(subprocess.run, ["qemu-img", "create", "-q", "-f", "qcow2", str(image), "4M"], check=True)
    async with signed_in(stack) as page, serve_file(image) as url:
        await page.get_by_role("link", name="Templates").click()
        await page.get_by_role("link", name="Add an image store").click()
        await page.get_by_label("Image storage plugin").select_option("fsbackup")
        await page.get_by_role("button", name="Next").click()
        await page.get_by_label("Store name").fill("store")
        path = page.get_by_label("Path")
        await path.fill("relative")
        await page.get_by_role("button", name="Add image store").click()
        await expect(page.locator("#config-path-error")).to_be_visible()
        await expect(path).to_have_attribute("aria-invalid", "true")
        await expect(page.get_by_label("Store name")).to_have_value("store")
        await path.fill(str(stack.pools_dir / "store"))
        await page.get_by_role("button", name="Add image store").click()
        await done(page)

        await page.get_by_role("link", name="Templates").click()
        await page.get_by_label("Name").fill("tiny")
        await page.get_by_label("URL").fill("ftp://example.invalid/tiny.qcow2")
        await page.get_by_role("button", name="Register").click()
        await expect(page.locator("#register-url-error")).to_be_visible()
        await expect(page.get_by_label("URL")).to_have_attribute("aria-invalid", "true")
        await page.get_by_label("URL").fill(url)
        await page.get_by_role("button", name="Register").click()
        await done(page)

        async def downloaded() -> bool:  # the page is drawn by the server: read again until the store has it
            await page.goto(f"{stack.base_url}/templates")
            return "DOWNLOADED" in await page.locator("tr[data-image=tiny]").inner_text()

        await assert_eventually(downloaded, timeout=60, interval=0.5, what="the store downloaded the template")
        await screenshot(page, "template-registered")

        await page.get_by_role("link", name="Pools").click()
        await page.get_by_role("link", name="Settings of p").click()
        threshold = page.get_by_label("Capacity Disable Threshold", exact=True)
        await threshold.fill("0")  # within the input's bounds (the browser lets it through); the model wants > 0
        await page.get_by_label("Storage tags").fill("fast, ssd")
        await page.get_by_label("Password").fill(NEW_PASSWORD)
        await page.get_by_label("Username").fill("admin")
        await page.get_by_role("button", name="Save settings").click()
        await expect(threshold).to_have_attribute("aria-invalid", "true")
        await expect(page.get_by_label("Storage tags")).to_have_value("fast, ssd")
        await expect(page.get_by_label("Username")).to_have_value("admin")
        await expect(page.get_by_label("Password")).to_have_value("")  # a secret is never written back
        await expect(page.get_by_label("Protocol")).to_have_value("")  # unchanged unless chosen
        assert PASSWORD not in await page.content()
        assert NEW_PASSWORD not in await page.content()
        await screenshot(page, "pool-settings-field-error")
        await page.get_by_label("Username").fill("")  # empty: unchanged (no agent check needed)
        await threshold.fill("0.7")
        await page.get_by_role("button", name="Save settings").click()
        await done(page)
    async with stack.client(Role.VIEWER) as client:
        changed = (await client.get("/api/v1/pools/p")).json()
        assert sorted(changed["tags"]) == ["fast", "ssd"]
        assert changed["thresholds"]["capacity_disable_threshold"] == 0.7
