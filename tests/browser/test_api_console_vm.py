"""A VM revert watched in the browser: a VM on libvirt's test driver with a volume and a VM snapshot, reverted
from the VMs page; its operation's progress fills in as the revert saga runs, and the saga's timeline shows the VM
stopped, its volume reverted and the VM started again."""

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import expect

from services.api.keys import Role
from services.demo_data import VirtualMachine
from tests.browser.api_stack import CLUSTER, Stack, api_stack, succeeded
from tests.browser.browser_support import screenshot, signed_in
from tests.helpers import assert_eventually

pytestmark = pytest.mark.e2e


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async with api_stack(database_url, amqp_url, namespace, tmp_path) as running:
        yield running


async def test_a_vm_revert_watched_from_the_vms_page_to_its_saga_timeline(stack: Stack) -> None:
    vm_id = uuid.uuid4()
    vm = VirtualMachine()
    try:
        vm.define(vm_id, [])
        vm.start()
        name = f"demo-vm-{vm_id.hex[:8]}"
        async with stack.client(Role.OPERATOR) as client:

            async def reported() -> bool:
                return any(each["vm_id"] == str(vm_id) for each in (await client.get("/api/v1/vms")).json())

            await assert_eventually(reported, timeout=30, what="the agent reports the VM")
            (stack.pools_dir / "p").mkdir()
            pool = {
                "name": "p",
                "plugin": "qcow2fs",
                "config": {"path": str(stack.pools_dir / "p")},
                "cluster": CLUSTER,
            }
            await succeeded(client, await client.post("/api/v1/pools", json=pool))
            volume = {"name": "root", "size": "16M", "pool": "p", "vm": name}
            await succeeded(client, await client.post("/api/v1/volumes", json=volume))
            await succeeded(client, await client.post(f"/api/v1/vms/{name}/snapshots", json={"name": "before"}))
        async with signed_in(stack) as page:
            await page.get_by_role("link", name="VMs").click()
            await expect(page.get_by_role("heading", name=name)).to_be_visible()
            await page.get_by_role("button", name=f"Revert {name}").click()
            await expect(page.locator("#progress li").nth(3)).to_be_attached(timeout=60_000)  # it moves
            await expect(page.locator("#status")).to_contain_text("is reverted", timeout=90_000)
            await expect(page.locator("#progress")).to_contain_text("vm.stopped")
            await screenshot(page, "vm-revert-progress")
            await page.get_by_role("link", name="See the saga's timeline").click()
            timeline = page.locator("main table").first
            for step in ("vm.stop", "snapshot.revert", "vm.start"):
                await expect(timeline).to_contain_text(step)
            await expect(page.get_by_role("heading", level=1)).to_contain_text("COMPLETED")
            await screenshot(page, "vm-revert-saga")
        assert vm.is_running()
    finally:
        vm.remove()
