"""A pool's settings after the add, on the real servers (storage service and agent in process): its configuration
shown with secrets masked; `pool.update` changes configuration fields through the agent that keeps them sealed, and
tags and thresholds in the storage service, whole or not at all; the pool's own thresholds decide placement."""

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from plugins.registry import Registry, load_plugins
from schemas import Message
from schemas.pool_settings import PoolUpdated, PoolUpdateFailed, UpdatePool
from schemas.storage import AddPool, CreateVolume, PoolAdded, PoolScope, PoolThresholds, VolumeCreateFailed
from schemas.storage_queries import ListPools, PoolInfo, PoolsListed
from tests.browser.netfs_plugin import LOADED as NETFS
from tests.integration.storage_stack import Stack, pool_directory

pytestmark = pytest.mark.integration
ZONE = uuid4()
PASSWORD, NEW_PASSWORD = "hunter2-first-secret", "n3w-second-secret"


def registry() -> Registry:
    plugins = load_plugins()
    plugins.plugins["netfs"] = NETFS
    return plugins


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str) -> AsyncIterator[Stack]:
    opened = await Stack.open(database_url, amqp_url, namespace)
    await opened.start_agent("kvm1", "c1", plugins=registry())
    await opened.start_storage(plugins=registry())
    yield opened
    await opened.close()


async def add_netfs_pool(stack: Stack, root: Path) -> UUID:
    pool_id = uuid4()
    config = {"path": str(root), "server": "192.0.2.10", "username": "strata", "password": PASSWORD}
    command = AddPool(
        pool_id=pool_id,
        name="filer-1",
        plugin="netfs",
        config=config,
        scope=PoolScope.CLUSTER,
        cluster_id="c1",
        zone_id=ZONE,
        thresholds=PoolThresholds(capacity_disable_threshold=0.9),
    )
    await stack.outcome(await stack.send(command), PoolAdded)
    return pool_id


async def info(stack: Stack, pool_id: UUID) -> PoolInfo:
    reply = await stack.bus.request(stack_envelope(ListPools(pool_id=pool_id)), timeout=10)
    assert isinstance(reply.payload, PoolsListed)
    [pool] = reply.payload.pools
    return pool


def stack_envelope(message: Message) -> Any:  # Any: an Envelope, built here to keep the test's calls short
    from schemas import Envelope

    return Envelope.wrap(message, producer="test")


async def update(stack: Stack, **fields: Any) -> PoolUpdated | PoolUpdateFailed:
    envelope = await stack.send(UpdatePool(**fields))

    def outcome() -> PoolUpdated | PoolUpdateFailed | None:
        for event in stack.events:
            if event.correlation_id == envelope.correlation_id and isinstance(
                event.payload, PoolUpdated | PoolUpdateFailed
            ):
                return event.payload
        return None

    from tests.helpers import assert_eventually

    await assert_eventually(lambda: outcome() is not None, timeout=30, what="the update's outcome")
    found = outcome()
    assert found is not None
    return found


async def sealed_config(stack: Stack, pool_id: UUID) -> dict[str, Any]:
    sealed = await stack.pool.fetchval("SELECT sealed_config FROM agent.pools WHERE pool_id = $1", pool_id)
    opened: dict[str, Any] = json.loads(stack.sealer.open(sealed, pool_id.bytes))
    return opened


async def test_a_pools_configuration_is_shown_masked_and_updated_through_its_agent(
    stack: Stack, tmp_path: Path
) -> None:
    pool_id = await add_netfs_pool(stack, pool_directory(tmp_path))
    shown = await info(stack, pool_id)
    assert shown.config["password"] == "**********"
    assert (shown.config["server"], shown.config["username"]) == ("192.0.2.10", "strata")
    assert shown.thresholds == PoolThresholds(capacity_disable_threshold=0.9)

    updated = await update(
        stack, pool_id=pool_id, config={"password": NEW_PASSWORD, "port": 2050}, tags=frozenset({"gold"})
    )
    assert isinstance(updated, PoolUpdated), updated
    assert updated.changed == ("password", "port", "tags")
    shown = await info(stack, pool_id)
    assert (shown.config["port"], shown.config["password"], shown.tags) == (2050, "**********", frozenset({"gold"}))
    assert shown.thresholds == PoolThresholds(capacity_disable_threshold=0.9)  # not given: kept
    kept = await sealed_config(stack, pool_id)
    assert (kept["password"], kept["port"], kept["server"]) == (NEW_PASSWORD, 2050, "192.0.2.10")

    # Neither password is anywhere a person or a tool reads: the events, the journal (commands included).
    for secret in (PASSWORD, NEW_PASSWORD):
        assert secret not in "".join(event.model_dump_json() for event in stack.events)
        assert not await stack.pool.fetchval(
            "SELECT count(*) FROM bus.journal WHERE payload::text LIKE $1", f"%{secret}%"
        )
    assert await stack.pool.fetchval("SELECT count(*) FROM bus.journal WHERE type = 'agent.pool.reconfigure'")


async def test_a_refused_update_changes_nothing_and_names_the_field(stack: Stack, tmp_path: Path) -> None:
    pool_id = await add_netfs_pool(stack, pool_directory(tmp_path))
    before = await info(stack, pool_id)

    bad_port = await update(stack, pool_id=pool_id, config={"port": 70000}, tags=frozenset({"gold"}))
    assert isinstance(bad_port, PoolUpdateFailed)
    assert (bad_port.error.code, bad_port.error.field) == ("INVALID_ARGUMENT", "port")
    moved = await update(stack, pool_id=pool_id, config={"path": "/elsewhere"})
    assert isinstance(moved, PoolUpdateFailed)
    assert moved.error.field == "config.path"
    assert "cannot change once the pool is added" in moved.error.message
    typo = await update(stack, pool_id=pool_id, config={"passwrod": "x"})
    assert isinstance(typo, PoolUpdateFailed)
    assert typo.error.field == "config.passwrod"
    assert await info(stack, pool_id) == before  # tags included: the update was all or nothing
    assert (await sealed_config(stack, pool_id))["password"] == PASSWORD

    # Nothing was left pending: the next update goes through.
    fixed = await update(stack, pool_id=pool_id, config={"port": 2051})
    assert isinstance(fixed, PoolUpdated)


async def test_a_pools_own_thresholds_decide_where_volumes_go(stack: Stack, tmp_path: Path) -> None:
    pool_id = await add_netfs_pool(stack, pool_directory(tmp_path))
    tight = PoolThresholds(allocated_capacity_disable_threshold=1e-9)
    assert isinstance(await update(stack, pool_id=pool_id, thresholds=tight), PoolUpdated)
    command = CreateVolume(volume_id=uuid4(), name="v", size_bytes=1 << 20, zone_id=ZONE, pool_id=pool_id)
    refused = await stack.outcome(await stack.send(command), VolumeCreateFailed)
    assert refused.error.code == "RESOURCE_EXHAUSTED"
    assert "allocated" in refused.error.message

    cleared = await update(stack, pool_id=pool_id, clear_thresholds=True)
    assert isinstance(cleared, PoolUpdated)
    assert cleared.changed == ("thresholds",)
    assert (await info(stack, pool_id)).thresholds is None
