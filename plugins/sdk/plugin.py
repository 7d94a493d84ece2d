"""`Plugin`: what an entry point in the `strata.plugins` group resolves to.

A plugin package exposes one module-level object, e.g. in `plugins/qcow2fs/__init__.py`:

    plugin = Plugin(manifest=MANIFEST, factory=Qcow2fsDriver, fault_points=("qcow2fs.coalesce.after_commit",))

and declares it in its pyproject:

    [project.entry-points."strata.plugins"]
    qcow2fs = "plugins.qcow2fs:plugin"

`manifest` may be a `PluginManifest` or the plain mapping of one (the registry validates either and reports the
field at fault). `factory(config)` receives the validated config model instance and returns the driver, which
implements the protocol of every role the manifest claims (`plugins.sdk.protocols`). Opening must not do I/O;
the first call does.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from plugins.sdk.config import PluginConfig
from plugins.sdk.manifest import PluginManifest
from plugins.sdk.protocols import Driver


@dataclass(frozen=True)
class Plugin:
    """A storage plugin: its manifest, how to open a driver, and the fault points its operations pass."""

    manifest: PluginManifest | Mapping[str, object]
    factory: Callable[[PluginConfig], Driver]  # the config is an instance of manifest.config_model
    fault_points: tuple[str, ...] = field(default=())

    def validated_manifest(self) -> PluginManifest:
        """The manifest as a validated `PluginManifest` (raises pydantic's `ValidationError` if it is broken)."""
        if isinstance(self.manifest, PluginManifest):
            return self.manifest
        return PluginManifest.model_validate(dict(self.manifest))


@dataclass(frozen=True)
class LoadedPlugin:
    """A plugin whose manifest passed validation: what the registry hands out."""

    name: str
    manifest: PluginManifest
    plugin: Plugin
    distribution: str | None = None

    def open(self, config: PluginConfig) -> Driver:
        """Open a driver for one pool or store; `config` must come from `registry.validate_config`."""
        return self.plugin.factory(config)

    @property
    def fault_points(self) -> tuple[str, ...]:
        """The named fault points the plugin's operations pass."""
        return self.plugin.fault_points
