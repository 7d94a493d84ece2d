"""The web console in a real browser (Debian's chromium driven by Playwright) against the whole system: the seed's
add-primary-storage flow for a qcow2fs pool on a KVM cluster, a wrong value shown on its own field, a secret never
echoed back after a refused submit, the pool Up with its capacity, then a volume created on it."""

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.browser.api_stack import CLUSTER, HOST, Stack, api_stack
from tests.browser.browser_support import choose_placement, screenshot, signed_in

pytestmark = pytest.mark.e2e
PASSWORD = "Browser-s3cret-never-echoed"


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async with api_stack(database_url, amqp_url, namespace, tmp_path) as running:
        yield running


async def wait_status(page: Page, text: str) -> None:
    """The operation page's status once the operation ended (the page reloads itself then)."""
    await expect(page.locator("#status")).to_contain_text(text, timeout=90_000)


async def test_a_qcow2fs_pool_added_through_the_form_then_a_volume_on_it(stack: Stack) -> None:
    async with signed_in(stack) as page:
        await choose_placement(
            page, stack.base_url, scope="cluster", target=CLUSTER, hypervisor="kvm", plugin="qcow2fs"
        )
        await expect(page.locator("#why-rawfile")).to_contain_text("no cluster scope")
        await expect(page.get_by_label("rawfile 0.1.0")).to_be_disabled()
        await screenshot(page, "add-storage-plugins")
        path = page.get_by_label("Path")
        await expect(path).to_have_attribute("required", "")
        await expect(page.get_by_label("Qemu Img Timeout Seconds")).to_have_value("3600.0")
        await page.get_by_label("Pool name").fill("fast-1")
        threshold = page.get_by_label("Capacity Disable Threshold", exact=True)
        await expect(threshold).to_have_value("0.85")
        await threshold.fill("0.8")
        await path.fill("relative/not-absolute")
        await page.get_by_role("button", name="Add storage").click()
        await expect(page.locator("#config-path-error")).to_contain_text("must be an absolute path")
        await expect(path).to_have_attribute("aria-invalid", "true")
        await expect(page.get_by_label("Pool name")).to_have_value("fast-1")
        await expect(threshold).to_have_value("0.8")
        await screenshot(page, "add-storage-field-error")
        pool_dir = stack.pools_dir / "fast-1"
        pool_dir.mkdir()
        await path.fill(str(pool_dir))
        await page.get_by_role("button", name="Add storage").click()
        await wait_status(page, "is Up")
        await expect(page.locator("#status")).to_contain_text("capacity")
        await screenshot(page, "add-storage-up")
        answer = await page.goto(f"{stack.base_url}/api/v1/pools/fast-1")
        assert answer is not None
        assert json.loads(await answer.text())["thresholds"]["capacity_disable_threshold"] == 0.8
        await page.goto(f"{stack.base_url}/pools")
        await expect(page.locator("tr[data-pool=fast-1] .state-Up")).to_have_text("Up")
        await screenshot(page, "pools")
        await page.goto(f"{stack.base_url}/volumes")
        await page.get_by_label("Name").fill("data-1")
        await page.get_by_label("Size").fill("16M")
        await page.get_by_label("Pool").select_option("fast-1")
        await page.get_by_role("button", name="Create volume").click()
        await wait_status(page, "is Ready")
        await page.goto(f"{stack.base_url}/volumes")
        await expect(page.locator("tr[data-volume=data-1]")).to_contain_text("Ready")
        await expect(page.locator("tr[data-volume=data-1]")).to_contain_text("fast-1")
        await screenshot(page, "volumes")


async def test_a_secret_is_never_echoed_back_after_a_refused_submit(stack: Stack) -> None:
    async with signed_in(stack) as page:
        await choose_placement(page, stack.base_url, scope="cluster", target=CLUSTER, hypervisor="kvm", plugin="netfs")
        await expect(page.get_by_label("Password")).to_have_attribute("type", "password")
        await expect(page.get_by_label("Protocol")).to_have_value("nfs")
        await expect(page.get_by_label("Port")).to_have_attribute("max", "65535")
        pool_dir = stack.pools_dir / "filer-1"
        pool_dir.mkdir()
        await page.get_by_label("Pool name").fill("filer-1")
        await page.get_by_label("Path").fill("not/absolute")
        await page.get_by_label("Server").fill("192.0.2.10")
        await page.get_by_label("Username").fill("strata")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Add storage").click()
        await expect(page.locator("#config-path-error")).to_be_visible()
        assert PASSWORD not in await page.content()
        await expect(page.get_by_label("Password")).to_have_value("")
        await expect(page.get_by_label("Server")).to_have_value("192.0.2.10")
        await screenshot(page, "add-storage-secret-not-echoed")
        await page.get_by_label("Path").fill(str(pool_dir))
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Add storage").click()
        await wait_status(page, "is Up")
        assert PASSWORD not in await page.content()
        for path in ("/pools", "/volumes", "/api/v1/pools/filer-1", "/api/v1/plugins/netfs"):
            response = await page.goto(f"{stack.base_url}{path}")
            assert response is not None
            assert PASSWORD not in await response.text()


async def test_the_example_rawfile_plugin_installed_with_pip_adds_a_host_pool(stack: Stack) -> None:
    async with signed_in(stack) as page:
        await choose_placement(page, stack.base_url, scope="host", target=HOST, hypervisor="kvm", plugin="rawfile")
        await expect(page.locator("legend").filter(has_text="rawfile")).to_contain_text("the pool's configuration")
        await expect(page.get_by_label("Preallocate")).not_to_be_checked()
        pool_dir = stack.pools_dir / "raw-1"
        pool_dir.mkdir()
        await page.get_by_label("Pool name").fill("raw-1")
        await page.get_by_label("Directory").fill(str(pool_dir))
        await page.get_by_role("button", name="Add storage").click()
        await wait_status(page, "is Up")
        await page.goto(f"{stack.base_url}/pools")
        await expect(page.locator("tr[data-pool=raw-1]")).to_contain_text("rawfile")
        await expect(page.locator("tr[data-pool=raw-1]")).to_contain_text(HOST)
        await screenshot(page, "add-storage-rawfile")
