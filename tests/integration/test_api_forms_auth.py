"""Who may use the new routes and console forms: no key is refused (401) on the upload, the in-place restore, the
cancel and the journal; a viewer may read the journal but not upload, restore or cancel (403); in the console, a
viewer's session cannot post a form, an operator's form without its CSRF token or from another site is refused
(403), and a refused post changes nothing (the volume keeps its size)."""

from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from services.api.keys import Role
from tests.browser.api_stack import Stack, add_pool, api_stack, csrf_of, sign_in, succeeded

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async with api_stack(database_url, amqp_url, namespace, tmp_path) as running:
        yield running


async def changes(client: httpx.AsyncClient) -> dict[str, int]:
    """The status of each change route, with a body it would accept from a role that may."""
    backup = uuid4()
    answers = {
        "upload": await client.post("/api/v1/templates/upload", params={"name": "t"}, content=b"qcow2"),
        "restore-in-place": await client.post(f"/api/v1/backups/{backup}/restore-in-place", json={"volume": "v"}),
        "cancel": await client.post(f"/api/v1/operations/{uuid4()}/cancel", json={}),
    }
    return {name: answer.status_code for name, answer in answers.items()}


async def test_the_new_routes_and_forms_refuse_who_may_not(stack: Stack) -> None:
    async with stack.client(Role.OPERATOR) as operator:
        await add_pool(operator, stack, "p")
        await succeeded(operator, await operator.post("/api/v1/volumes", json={"name": "v", "size": "8M", "pool": "p"}))
    async with stack.client() as nobody:
        assert await changes(nobody) == {"upload": 401, "restore-in-place": 401, "cancel": 401}
        assert (await nobody.get("/api/v1/events/history")).status_code == 401
    async with stack.client(Role.VIEWER) as viewer:
        assert await changes(viewer) == {"upload": 403, "restore-in-place": 403, "cancel": 403}
        assert (await viewer.get("/api/v1/events/history")).status_code == 200

    async with stack.client() as browser:
        await sign_in(browser, stack.keys[Role.VIEWER])
        page = await browser.get("/volumes/v")
        assert page.status_code == 200
        assert "Resize volume" not in page.text  # a viewer is shown no form
        refused = await browser.post("/volumes/v/resize", data={"size": "16M", "csrf_token": csrf_of(page.text)})
        assert refused.status_code == 403
    async with stack.client() as browser:
        await sign_in(browser, stack.keys[Role.OPERATOR])
        page = await browser.get("/volumes/v")
        csrf = csrf_of(page.text)
        for form in ("/volumes/v/resize", "/templates", "/pools/p/settings"):
            assert (await browser.post(form, data={"size": "16M"})).status_code == 403, form  # no token
        across = await browser.post(
            "/volumes/v/resize",
            data={"size": "16M", "csrf_token": csrf},
            headers={"Origin": "https://elsewhere.example"},
        )
        assert across.status_code == 403
    async with stack.client(Role.VIEWER) as viewer:
        assert (await viewer.get("/api/v1/volumes/v")).json()["size_bytes"] == 8 << 20
