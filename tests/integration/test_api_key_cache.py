"""The API's key check remembered for a bounded time (STRATA_API_KEY_CACHE_SECONDS) on PostgreSQL: a live key is
not looked up again within it; a key revoked through this process is refused at once, one revoked elsewhere (another
API process, `strata api-key revoke`) once the period ends, and at once without the cache; an unknown key is never
remembered."""

from collections.abc import AsyncIterator

import pytest

from bus.postgres import create_pool
from bus.postgres.pool import Pool
from services.api.bootstrap import migrate_api
from services.api.keys import KeyStore, Role
from tests.helpers import assert_eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    opened = await create_pool(database_url, min_size=1, max_size=2)
    async with opened.acquire() as connection:
        await migrate_api(connection)
    yield opened
    await opened.close()


async def revoke_elsewhere(pool: Pool, key_id: object) -> None:
    """What another process's revocation leaves in the table."""
    await pool.execute("UPDATE api.keys SET revoked_at = now() WHERE key_id = $1", key_id)


async def test_a_live_key_is_remembered_and_a_revocation_here_forgets_it_at_once(pool: Pool) -> None:
    store = KeyStore(pool, cache_seconds=60)
    key, secret = await store.create("cached", Role.VIEWER, created_by="test")
    assert await store.find(secret) == key
    await revoke_elsewhere(pool, key.key_id)
    assert await store.find(secret) == key  # within the period: remembered (bounded by cache_seconds)
    other, other_secret = await store.create("other", Role.VIEWER, created_by="test")
    assert await store.find(other_secret) == other
    await store.revoke(other.key_id)
    assert await store.find(other_secret) is None  # revoked through this process: refused at once
    assert await store.find("strata_not-a-key") is None


async def test_without_the_cache_a_revocation_elsewhere_is_refused_at_once(pool: Pool) -> None:
    store = KeyStore(pool, cache_seconds=0)
    key, secret = await store.create("uncached", Role.OPERATOR, created_by="test")
    assert await store.find(secret) == key
    await revoke_elsewhere(pool, key.key_id)
    assert await store.find(secret) is None


async def test_a_revocation_elsewhere_is_refused_once_the_period_ends(pool: Pool) -> None:
    store = KeyStore(pool, cache_seconds=0.2)
    key, secret = await store.create("short", Role.VIEWER, created_by="test")
    assert await store.find(secret) == key
    await revoke_elsewhere(pool, key.key_id)

    async def refused() -> bool:
        return await store.find(secret) is None

    await assert_eventually(refused, timeout=10, what="the revoked key refused once its period ended")
