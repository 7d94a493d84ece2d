"""The open plugin drivers of the pools this agent works on, opened from the `agent.pools` record on first use.

An agent may get a command for a pool that another agent of its cluster attached, or that it attached before a
restart: it reopens the driver from the recorded plugin name and configuration (opened with the deployment key and
validated again).
"""

import json
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from plugins.registry import Registry, validate_config
from plugins.sdk.capabilities import Capability
from plugins.sdk.config import PluginConfig
from plugins.sdk.protocols import Driver, ImageStore, PrimaryStorage, SnapshotProvider
from schemas.errors import InvalidArgument, Unimplemented
from services.agent import repository
from services.agent.timing import PluginCallMetrics
from services.runtime.sealing import SecretSealer


class PoolDrivers:
    """One open driver per pool, from the plugin registry; pool configurations are kept sealed by `sealer`."""

    def __init__(self, plugins: Registry, sealer: SecretSealer, calls: PluginCallMetrics | None = None) -> None:
        self.plugins = plugins
        self.sealer = sealer
        self.calls = calls
        self._open: dict[UUID, Driver] = {}
        self._versions: dict[UUID, int] = {}  # the configuration version each open pool driver was opened with
        self._retired: list[Driver] = []  # drivers replaced by a new configuration, closed with the agent
        self._store_configs: dict[UUID, tuple[str, str]] = {}  # what each open store's driver was opened with

    def _open_driver(
        self, pool_id: UUID, plugin_name: str, config: Mapping[str, object]
    ) -> tuple[Driver, PluginConfig]:
        """Validate `config` against the plugin's model and open a driver (replacing one already open)."""
        plugin = self.plugins.get(plugin_name)
        validated = validate_config(plugin, config)
        driver = plugin.open(validated)
        if self.calls is not None:
            driver = self.calls.timed(driver, plugin_name)
        self._open[pool_id] = driver
        return driver, validated

    async def attach(
        self, connection: Any, pool_id: UUID, plugin_name: str, config: Mapping[str, object], host: str
    ) -> PrimaryStorage:  # asyncpg
        """Open the pool's driver, take the storage into use, and record how to reopen it."""
        opened, validated = self._open_driver(pool_id, plugin_name, config)
        driver = _primary(opened, plugin_name)
        await driver.add_pool(str(pool_id))
        self._versions[pool_id] = await self._keep(
            connection, pool_id, plugin_name=plugin_name, config=config, validated=validated, host=host
        )
        return driver

    async def _keep(
        self,
        connection: Any,  # asyncpg
        pool_id: UUID,
        *,
        plugin_name: str,
        config: Mapping[str, object],
        validated: PluginConfig,
        host: str,
    ) -> int:
        """Record how to reopen the pool (its configuration sealed, and masked for a look); its config version."""
        return await repository.save_pool(
            connection,
            pool_id,
            plugin_name,
            masked_config=validated.model_dump_json(),  # SecretStr fields dump as '**********'
            sealed_config=self.sealer.seal(json.dumps(dict(config)).encode(), pool_id.bytes),
            host=host,
        )

    def _config_of(self, record: repository.PoolRecord) -> dict[str, Any]:
        """The pool's raw configuration (its sealed copy opened)."""
        if record.sealed_config is None:
            return dict(record.config)
        config: dict[str, Any] = json.loads(self.sealer.open(record.sealed_config, record.pool_id.bytes))
        return config

    async def driver(self, connection: Any, pool_id: UUID) -> Driver:  # asyncpg connection
        """The pool's open driver, reopened from its record if this agent has not opened it yet, or opened it with a
        configuration since replaced (`reconfigure`, here or by another agent of the cluster)."""
        if pool_id in self._open and await repository.config_version(connection, pool_id) != self._versions.get(
            pool_id
        ):
            self._retired.append(self._open.pop(pool_id))
        if pool_id not in self._open:
            record = await repository.load_pool(connection, pool_id)
            self._open_driver(pool_id, record.plugin, self._config_of(record))
            self._versions[pool_id] = record.config_version
        return self._open[pool_id]

    async def reconfigure(
        self, connection: Any, pool_id: UUID, changes: Mapping[str, object], host: str
    ) -> dict[str, Any]:  # asyncpg connection
        """Merge `changes` into the pool's configuration, validate the whole against the plugin's model (an error
        names the field, never the value), reach the pool with it, and only then keep it and use it; return the
        configuration with its secrets masked."""
        record = await repository.load_pool(connection, pool_id)
        merged = {**self._config_of(record), **changes}
        plugin = self.plugins.get(record.plugin)
        validated = validate_config(plugin, merged)
        candidate = plugin.open(validated)
        try:
            primary = _primary(candidate, record.plugin)
            await primary.get_pool()  # the same pool is there with the new settings
            await primary.stats()
        except BaseException:
            await candidate.close()
            raise
        if self.calls is not None:
            candidate = self.calls.timed(candidate, record.plugin)
        version = await self._keep(
            connection, pool_id, plugin_name=record.plugin, config=merged, validated=validated, host=host
        )
        if pool_id in self._open:
            self._retired.append(self._open[pool_id])
        self._open[pool_id], self._versions[pool_id] = candidate, version
        masked: dict[str, Any] = json.loads(validated.model_dump_json())
        return masked

    async def primary(self, connection: Any, pool_id: UUID) -> PrimaryStorage:  # asyncpg connection
        """The pool's driver as primary storage."""
        return _primary(await self.driver(connection, pool_id), str(pool_id))

    async def snapshots(self, connection: Any, pool_id: UUID) -> SnapshotProvider:  # asyncpg connection
        """The pool's driver as a snapshot provider; `Unimplemented` if its plugin takes no snapshots."""
        driver = await self.driver(connection, pool_id)
        if not isinstance(driver, SnapshotProvider):
            raise Unimplemented(f"the plugin of pool {pool_id} takes no snapshots", field="pool_id")
        return driver

    async def store(self, store_id: UUID, plugin_name: str, config: Mapping[str, object]) -> ImageStore:
        """A zone-wide store's driver, from the plugin and configuration its command carried (reopened when they
        change); `InvalidArgument` if the plugin keeps no images."""
        opened = self._open.get(store_id)
        fingerprint = (plugin_name, json.dumps(dict(config), sort_keys=True, default=str))
        if opened is None or self._store_configs.get(store_id) != fingerprint:
            if opened is not None:
                await opened.close()
            opened, _ = self._open_driver(store_id, plugin_name, config)
            self._store_configs[store_id] = fingerprint
        if not isinstance(opened, ImageStore):
            raise InvalidArgument(f"store {store_id}: plugin {plugin_name!r} is not an image store", field="plugin")
        return opened

    async def claims(self, connection: Any, pool_id: UUID, capability: Capability) -> bool:  # asyncpg connection
        """Whether the plugin of the pool claims `capability` in its manifest."""
        record = await repository.load_pool(connection, pool_id)
        return capability in self.plugins.get(record.plugin).manifest.capabilities

    async def forget(self, connection: Any, pool_id: UUID) -> None:  # asyncpg connection
        """Close the pool's driver, if open, and delete the pool's record."""
        driver = self._open.pop(pool_id, None)
        self._versions.pop(pool_id, None)
        if driver is not None:
            await driver.close()
        await repository.delete_pool(connection, pool_id)

    async def close(self) -> None:
        """Close every open driver (and those a new configuration replaced)."""
        drivers, self._open, self._retired = [*self._open.values(), *self._retired], {}, []
        for driver in drivers:
            await driver.close()


def _primary(driver: Driver, what: str) -> PrimaryStorage:
    if not isinstance(driver, PrimaryStorage):
        raise InvalidArgument(f"{what}: the plugin is not a primary storage plugin", field="plugin")
    return driver
