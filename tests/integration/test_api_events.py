"""The journal and the live bus through the API: the history of a pool's add (its command journaled with the caller
as producer, the config's password masked), walked a page at a time with the keyset cursor, bad filters refused on
their field; the tail as Server-Sent Events, an event's secret masked on the way; no key refused."""

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bus.codec import encode
from schemas import Envelope
from schemas.redact import REDACTED
from schemas.storage_queries import ListPools
from services.api.keys import Role
from tests.browser.api_stack import CLUSTER, Stack, add_pool, api_stack, succeeded

pytestmark = pytest.mark.integration
PASSWORD = "Journal-s3cret-never-shown"


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async with api_stack(database_url, amqp_url, namespace, tmp_path) as running:
        yield running


async def test_the_history_of_a_pool_add_paged_with_its_password_masked(stack: Stack) -> None:
    (stack.pools_dir / "filer").mkdir()
    config = {"path": str(stack.pools_dir / "filer"), "server": "192.0.2.7", "username": "u", "password": PASSWORD}
    async with stack.client(Role.OPERATOR) as client:
        pool = {"name": "filer", "plugin": "netfs", "config": config, "cluster": CLUSTER}
        added = await succeeded(client, await client.post("/api/v1/pools", json=pool))
    async with stack.client() as nobody:
        assert (await nobody.get("/api/v1/events/history")).status_code == 401
    async with stack.client(Role.VIEWER) as client:
        whole = await client.get("/api/v1/events/history", params={"correlation": added["correlation_id"]})
        assert whole.status_code == 200, whole.text
        assert PASSWORD not in whole.text
        messages = whole.json()["messages"]
        assert whole.json()["next"] is None
        command = next(each for each in messages if each["type"] == "pool.add")
        assert command["producer"] == "api:test-operator(operator)"
        assert "pool.added" in [each["type"] for each in messages]

        paged: list[str] = []
        after: str | None = None
        while True:
            params = {"correlation": added["correlation_id"], "limit": 1, **({"after": after} if after else {})}
            page = (await client.get("/api/v1/events/history", params=params)).json()
            paged += [each["message_id"] for each in page["messages"]]
            after = page["next"]
            if after is None:
                break
        assert paged == [each["message_id"] for each in messages]

        typed = await client.get("/api/v1/events/history", params={"type": "pool.add", "limit": 1000})
        assert {each["type"] for each in typed.json()["messages"]} == {"pool.add"}
        bad_cursor = await client.get("/api/v1/events/history", params={"after": "yesterday"})
        assert bad_cursor.status_code == 422
        assert bad_cursor.json()["error"]["field"] == "after"
        naive = await client.get("/api/v1/events/history", params={"since": "2026-01-01T00:00:00"})
        assert naive.status_code == 422
        assert naive.json()["error"]["field"] == "since"


async def test_the_tail_streams_events_as_they_cross_the_bus_with_secrets_masked(stack: Stack) -> None:
    async with stack.client() as nobody:
        assert (await nobody.get("/api/v1/events/tail")).status_code == 401
    async with stack.client(Role.VIEWER) as viewer, stack.client(Role.OPERATOR) as operator:
        heard: list[dict[str, Any]] = []  # Any: JSON values
        async with viewer.stream("GET", "/api/v1/events/tail", params={"count": 50}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            assert await anext(lines) == ": tailing"  # the private queue is bound: nothing from now on is missed
            wire = encode(Envelope.wrap(ListPools()))
            secret = {"pool_id": str(uuid.uuid4()), "config": {"password": PASSWORD}}
            leaked = replace(wire, type="test.leak", message_id=str(uuid.uuid4()), body=json.dumps(secret).encode())
            await stack.runner.transport.publish("events", "test.leak", leaked)
            await add_pool(operator, stack, "p")
            async for line in lines:
                assert PASSWORD not in line
                if line.startswith("data: "):
                    heard.append(json.loads(line.removeprefix("data: ")))
                if {"test.leak", "pool.added"} <= {each["type"] for each in heard}:
                    break
        leak = next(each for each in heard if each["type"] == "test.leak")
        assert leak["payload"]["pool_id"] == secret["pool_id"]  # the event, masked by name (its type is unknown)
        assert PASSWORD not in json.dumps(leak)
        assert REDACTED in json.dumps(leak)
        assert all(each["type"] != "pool.add" for each in heard)  # commands are in the history, not the tail
