"""Playwright driving Debian's chromium by its path (never a browser Playwright would download), signed in to the
console of a test stack, and screenshots saved where the README shows them."""

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright

from services.api.keys import Role
from tests.browser.api_stack import Stack

CHROMIUM = Path("/usr/bin/chromium")
# Each run's screenshots go to docs/screenshots/latest/ (ignored by git, so a test run leaves the tree clean); the
# ones the README shows are committed beside it, copied from there by hand when the pages change.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "latest"


def require_chromium() -> None:
    """Fail (never skip) naming what to install when Debian's chromium is missing."""
    if not CHROMIUM.exists():
        found = shutil.which("chromium")
        pytest.fail(f"Debian's chromium is needed at {CHROMIUM} (found: {found}); as root: apt-get install chromium")


@asynccontextmanager
async def signed_in(stack: Stack, role: Role = Role.OPERATOR) -> AsyncIterator[Page]:
    """A browser page signed in to the stack's console with the key of `role`."""
    require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 900})
            await page.goto(f"{stack.base_url}/pools")
            await page.get_by_label("API key").fill(stack.keys[role])
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(f"{stack.base_url}/pools")
            yield page
        finally:
            await browser.close()


async def screenshot(page: Page, name: str) -> Path:
    """Save the whole page as docs/screenshots/latest/NAME.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def choose_placement(page: Page, base_url: str, *, scope: str, target: str, hypervisor: str, plugin: str) -> None:
    """Walk the add-storage flow's choices with the keyboard's controls: scope, cluster or host, hypervisor, plugin."""
    await page.goto(f"{base_url}/storage/add")
    await page.get_by_label(scope, exact=True).check()
    await page.get_by_role("button", name="Next").click()
    await page.get_by_label("Cluster" if scope == "cluster" else "Host", exact=True).select_option(target)
    await page.get_by_role("button", name="Next").click()
    await page.get_by_label("Hypervisor").select_option(hypervisor)
    await page.get_by_role("button", name="Next").click()
    await page.get_by_label(plugin).check()
    await page.get_by_role("button", name="Next").click()
