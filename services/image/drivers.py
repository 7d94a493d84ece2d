"""The open drivers of the image stores, from their sealed configuration, one per store, opened on first use."""

import json
from uuid import UUID

from plugins.registry import Registry, validate_config
from plugins.sdk.protocols import ImageStore
from schemas.errors import InvalidArgument
from services.runtime.sealing import SecretSealer


class StoreDrivers:
    """One open driver per image store; configurations are sealed with the deployment key by `sealer`."""

    def __init__(self, plugins: Registry, sealer: SecretSealer) -> None:
        self.plugins = plugins
        self.sealer = sealer
        self._open: dict[UUID, ImageStore] = {}

    def seal(self, store_id: UUID, config: dict[str, object]) -> str:
        """The configuration sealed for keeping (bound to the store's id)."""
        return self.sealer.seal(json.dumps(config).encode(), store_id.bytes)

    def open(self, store_id: UUID, plugin_name: str, sealed_config: str) -> ImageStore:
        """The store's driver, opened from its sealed configuration if not open yet."""
        if store_id not in self._open:
            plugin = self.plugins.get(plugin_name)
            config = validate_config(plugin, json.loads(self.sealer.open(sealed_config, store_id.bytes)))
            driver = plugin.open(config)
            if not isinstance(driver, ImageStore):
                raise InvalidArgument(f"plugin {plugin_name!r} is not an image store", field="plugin")
            self._open[store_id] = driver
        return self._open[store_id]

    async def forget(self, store_id: UUID) -> None:
        """Close a removed store's driver, if open."""
        driver = self._open.pop(store_id, None)
        if driver is not None:
            await driver.close()

    async def close(self) -> None:
        """Close every open driver."""
        drivers, self._open = list(self._open.values()), {}
        for driver in drivers:
            await driver.close()
