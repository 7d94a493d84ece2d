"""A pool's secrets at rest: the agent keeps its configuration sealed with the deployment key, masked for a look.

The plugin here is qcow2fs with a password added to its configuration, as a vendor's array plugin would have.
"""

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import pytest
from pydantic import Field, SecretStr

from bus.postgres import create_pool
from bus.postgres.pool import Pool
from plugins.qcow2fs import MANIFEST, Qcow2fsConfig, Qcow2fsDriver
from plugins.registry import Registry, load_entry_point
from plugins.sdk import Plugin
from schemas.errors import FailedPrecondition
from services.agent.drivers import PoolDrivers
from services.agent.schema import migrate_agent
from services.runtime.sealing import KEY_BYTES, SecretSealer
from tests.integration.plugins_qcow2fs_support import require_qemu_tools

pytestmark = pytest.mark.integration
PASSWORD = "array-admin-" + uuid4().hex


class VaultedConfig(Qcow2fsConfig):
    password: SecretStr = Field(description="The array's password.")


PLUGINS = Registry(
    plugins={
        "vaulted": load_entry_point(
            "vaulted",
            Plugin(
                manifest=MANIFEST.model_copy(update={"name": "vaulted", "config_model": VaultedConfig}),
                factory=Qcow2fsDriver,
            ),
        )
    }
)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    require_qemu_tools()
    opened = await create_pool(database_url, min_size=1, max_size=2)
    async with opened.acquire() as connection:
        await migrate_agent(connection)
    yield opened
    await opened.close()


async def test_the_pool_config_is_sealed_at_rest_and_reopens_on_another_agent(pool: Pool, tmp_path: Path) -> None:
    key = os.urandom(KEY_BYTES)
    pool_id = uuid4()
    root = tmp_path / "pool"
    root.mkdir()
    first = PoolDrivers(PLUGINS, SecretSealer(key))
    async with pool.acquire() as connection:
        await first.attach(connection, pool_id, "vaulted", {"path": str(root), "password": PASSWORD}, "kvm1")
        whole_row = await connection.fetchval("SELECT t::text FROM agent.pools AS t")
        masked = await connection.fetchval("SELECT config FROM agent.pools")
    assert PASSWORD not in whole_row
    assert json.loads(masked) == {
        "path": str(root),
        "shared": False,
        "qemu_img": "qemu-img",
        "qemu_img_timeout_seconds": 3600.0,
        "reserve_bytes": 0,
        "password": "**********",
    }
    await first.close()

    # Another agent of the deployment (same key) reopens the pool from the record and works on it.
    second = PoolDrivers(PLUGINS, SecretSealer(key))
    async with pool.acquire() as connection:
        stats = await (await second.primary(connection, pool_id)).stats()
    assert stats.capacity_bytes > 0
    await second.close()

    # An agent with another key is refused, and the refusal says which key, never the secret.
    stranger = PoolDrivers(PLUGINS, SecretSealer(os.urandom(KEY_BYTES), source="secret key file /tmp/other.key"))
    async with pool.acquire() as connection:
        with pytest.raises(FailedPrecondition) as refused:
            await stranger.driver(connection, pool_id)
    assert "/tmp/other.key" in refused.value.message
    assert PASSWORD not in refused.value.message
