"""The console's events page in a real browser: the journal filtered by type (a pool's add, with who asked), a bad
correlation id shown on its field, the next page reached by its link, and the live tail showing the agent's
heartbeats as they cross the bus."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import expect

from services.api.keys import Role
from tests.browser.api_stack import Stack, add_pool, api_stack
from tests.browser.browser_support import screenshot, signed_in

pytestmark = pytest.mark.e2e


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async with api_stack(database_url, amqp_url, namespace, tmp_path) as running:
        yield running


async def test_the_journal_filtered_paged_and_the_live_tail(stack: Stack) -> None:
    async with stack.client(Role.OPERATOR) as client:
        await add_pool(client, stack, "p")
    async with signed_in(stack, Role.VIEWER) as page:
        await page.get_by_role("link", name="Events").click()
        await expect(page.locator("#live")).to_contain_text("host.heartbeat", timeout=30_000)
        await page.get_by_label("Correlation id").fill("nope")
        await page.get_by_role("button", name="Show").click()
        await expect(page.locator("#events-correlation-error")).to_contain_text("not a UUID")
        await expect(page.get_by_label("Correlation id")).to_have_attribute("aria-invalid", "true")
        await page.get_by_label("Correlation id").fill("")
        await page.get_by_label("Message type").fill("pool.add")
        await page.get_by_role("button", name="Show").click()
        await expect(page.locator("#history tbody tr")).to_have_count(1)
        await expect(page.locator("#history tbody tr")).to_contain_text("api:test-operator(operator)")
        await screenshot(page, "events")
        await page.get_by_label("Message type").fill("")
        await page.get_by_label("Per page").select_option("5")
        await page.get_by_role("button", name="Show").click()
        await expect(page.locator("#history tbody tr")).to_have_count(5)
        first = await page.locator("#history tbody tr").first.inner_text()
        await page.get_by_role("link", name="Next page").click()
        await expect(page.locator("#history tbody tr").first).not_to_have_text(first)
