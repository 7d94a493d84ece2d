"""What a conformance test works with: the plugin under test, its driver, a scratch directory, and a record of
everything the test created so that it is deleted whatever happens."""

import asyncio
import contextlib
import json
import shutil
import tempfile
import tomllib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from plugins.registry import load_plugins, validate_config
from plugins.sdk import Capability, LoadedPlugin, Role
from plugins.sdk.errors import NotFound, StrataError
from plugins.sdk.protocols import BackupTarget, Driver, ImageStore, PrimaryStorage, SnapshotProvider

T = TypeVar("T")
NOT_CLAIMED = "not claimed by manifest"


def load_plugin(name: str) -> LoadedPlugin:
    """The installed plugin `name`; raises with the registry's reason if it did not load."""
    return load_plugins().get(name)


def read_config_file(path: str | None) -> dict[str, Any]:  # Any: config values are whatever the plugin takes
    """The raw config from a JSON or TOML file (an empty config without a file)."""
    if path is None:
        return {}
    text = Path(path).read_text()
    data = tomllib.loads(text) if path.endswith(".toml") else json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold an object of config fields")
    return data


def substitute(raw: Any, workdir: Path, unique: str) -> Any:  # Any: nested JSON values
    """Replace `{workdir}` and `{unique}` in every string of the raw config."""
    if isinstance(raw, str):
        return raw.replace("{workdir}", str(workdir)).replace("{unique}", unique)
    if isinstance(raw, dict):
        return {key: substitute(value, workdir, unique) for key, value in raw.items()}
    if isinstance(raw, list):
        return [substitute(value, workdir, unique) for value in raw]
    return raw


@dataclass
class Created:
    """Ids the test created, deleted in reverse order at the end."""

    pool: str | None = None
    volumes: list[str] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)
    backups: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)


class Kit:
    """One test's plugin, driver, event loop and scratch space."""

    def __init__(self, plugin: LoadedPlugin, raw_config: dict[str, Any]) -> None:  # Any: see read_config_file
        self.plugin = plugin
        self.manifest = plugin.manifest
        self.scratch = Path(tempfile.mkdtemp(prefix=f"strata-conformance-{plugin.name}-"))
        self.unique = uuid.uuid4().hex[:10]
        workdir = self.scratch / "workdir"
        workdir.mkdir()
        self.raw_config = substitute(raw_config, workdir, self.unique)
        self.config = validate_config(plugin, self.raw_config)
        self.created = Created()
        self.loop = asyncio.new_event_loop()
        self.driver: Driver = plugin.open(self.config)

    def id(self, what: str) -> str:
        """A fresh id for an object of this test."""
        return f"{what}-{self.unique}-{uuid.uuid4().hex[:6]}"

    def run(self, operation: Awaitable[T]) -> T:
        """Run one async operation on the test's loop."""
        return self.loop.run_until_complete(operation)

    def claims(self, *items: Role | Capability) -> bool:
        """Whether the manifest claims every role and capability given."""
        return all(
            item in self.manifest.roles if isinstance(item, Role) else item in self.manifest.capabilities
            for item in items
        )

    @property
    def primary(self) -> PrimaryStorage:
        assert isinstance(self.driver, PrimaryStorage), "the driver does not implement PrimaryStorage"
        return self.driver

    @property
    def snapshots(self) -> SnapshotProvider:
        assert isinstance(self.driver, SnapshotProvider), "the driver does not implement SnapshotProvider"
        return self.driver

    @property
    def backups(self) -> BackupTarget:
        assert isinstance(self.driver, BackupTarget), "the driver does not implement BackupTarget"
        return self.driver

    @property
    def images(self) -> ImageStore:
        assert isinstance(self.driver, ImageStore), "the driver does not implement ImageStore"
        return self.driver

    def close(self) -> None:
        """Delete everything the test created (what is already gone is fine), close the driver, drop the scratch."""
        try:
            self.run(self._clean_up())
        finally:
            self.run(self.driver.close())
            self.loop.close()
            shutil.rmtree(self.scratch, ignore_errors=True)

    async def _clean_up(self) -> None:
        steps: list[Callable[[], Awaitable[None]]] = []
        if self.created.pool is not None:
            steps.append(self._leave_maintenance)
        for snapshot_id in reversed(self.created.snapshots):
            steps.append(partial(self.snapshots.delete_snapshot, snapshot_id))
        for volume_id in reversed(self.created.volumes):
            steps.append(partial(self.primary.delete_volume, volume_id))
        for backup_id in reversed(self.created.backups):
            steps.append(partial(self.backups.delete_backup, backup_id))
        for image_id in reversed(self.created.images):
            steps.append(partial(self.images.delete_image, image_id))
        if self.created.pool is not None:
            steps.append(self._leave_pool)
        leftovers: list[str] = []
        for step in steps:
            try:
                await step()
            except NotFound:
                continue
            except StrataError as error:
                leftovers.append(f"{type(error).__name__}: {error.message}")
        if leftovers:
            raise AssertionError("the plugin could not delete what the test created: " + "; ".join(leftovers))

    async def _leave_maintenance(self) -> None:
        # Not in maintenance: cancel refuses, which is what we want.
        with contextlib.suppress(StrataError):
            await self.primary.cancel_maintenance()

    async def _leave_pool(self) -> None:
        assert self.created.pool is not None
        await self.primary.remove_pool(self.created.pool)
