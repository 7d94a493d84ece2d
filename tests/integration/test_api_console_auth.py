"""The console's session against forgery: the cookie is HttpOnly and SameSite=Strict, a change without the
session's CSRF token or from another site is refused (403) and changes nothing, a viewer's session cannot change
anything, and the sign-in keeps no key in the browser."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.api.keys import Role
from tests.browser.api_stack import CLUSTER, Stack, api_stack, csrf_of, sign_in

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async with api_stack(database_url, amqp_url, namespace, tmp_path) as running:
        yield running


def pool_form(stack: Stack, csrf: str | None) -> dict[str, str]:
    (stack.pools_dir / "forged").mkdir(exist_ok=True)
    form = {
        "zone": "default",
        "scope": "cluster",
        "target": CLUSTER,
        "hypervisor": "kvm",
        "plugin": "qcow2fs",
        "name": "forged",
        "config.path": str(stack.pools_dir / "forged"),
    }
    return {**form, "csrf_token": csrf} if csrf is not None else form


async def test_a_request_forged_across_sites_is_refused(stack: Stack) -> None:
    async with stack.client() as browser:
        answer = await sign_in(browser, stack.keys[Role.OPERATOR])
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert stack.keys[Role.OPERATOR] not in answer.headers["set-cookie"]
        page = (await browser.get("/storage/add?scope=cluster&target=rack-1&hypervisor=kvm&plugin=qcow2fs")).text
        csrf = csrf_of(page)
        no_token = await browser.post("/storage/add", data=pool_form(stack, None))
        assert no_token.status_code == 403, no_token.text
        wrong_token = await browser.post("/storage/add", data=pool_form(stack, "forged-token"))
        assert wrong_token.status_code == 403
        other_site = await browser.post(
            "/storage/add", data=pool_form(stack, csrf), headers={"Origin": "http://evil.example"}
        )
        assert other_site.status_code == 403
        json_without_token = await browser.post("/api/v1/pools/forged/disable")
        assert json_without_token.status_code == 403
        assert (await browser.get("/api/v1/pools")).json() == []  # nothing was added
        accepted = await browser.post("/storage/add", data=pool_form(stack, csrf))
        assert accepted.status_code == 303, accepted.text
        assert accepted.headers["location"].startswith("/operations/")


async def test_a_viewer_session_changes_nothing_and_no_session_is_sent_to_sign_in(stack: Stack) -> None:
    async with stack.client() as anonymous:
        answer = await anonymous.get("/pools")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/login?next=/pools"
        assert (await anonymous.post("/login", data={"key": "strata_wrong"})).status_code == 401
    async with stack.client() as browser:
        await sign_in(browser, stack.keys[Role.VIEWER])
        csrf = csrf_of((await browser.get("/pools")).text)
        refused = await browser.post("/storage/add", data=pool_form(stack, csrf))
        assert refused.status_code == 403
        assert "may not do this" in refused.text
        assert (await browser.get("/api/v1/pools")).json() == []
