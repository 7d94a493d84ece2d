"""The plugin SDK: everything a storage plugin needs to plug into strata, and nothing else of the project.

- `manifest.PluginManifest`, `capabilities` (Role, Scope, Locality, Capability), `config.PluginConfig` (the base of
  a plugin's config model; secrets as `SecretStr`) and `config.CapacityThresholds`;
- `protocols`: `PrimaryStorage`, `SnapshotProvider`, `BackupTarget`, `ImageStore`, each async and idempotent;
- `types`: the frozen models the protocols return;
- `errors`: CSI's error classes; `faults`: named fault points for crash tests; `progress`: the progress callback;
- `plugin.Plugin`: what an entry point in the `strata.plugins` group resolves to (see its docstring).

A walkthrough for vendors is in docs/plugins.md.
"""

from plugins.sdk.capabilities import Capability, Locality, Role, Scope
from plugins.sdk.config import CapacityThresholds, PluginConfig
from plugins.sdk.manifest import PluginManifest
from plugins.sdk.plugin import LoadedPlugin, Plugin
from plugins.sdk.progress import ProgressCallback
from plugins.sdk.protocols import BackupTarget, Driver, ImageStore, PrimaryStorage, SnapshotProvider

__all__ = [
    "BackupTarget",
    "Capability",
    "CapacityThresholds",
    "Driver",
    "ImageStore",
    "LoadedPlugin",
    "Locality",
    "Plugin",
    "PluginConfig",
    "PluginManifest",
    "PrimaryStorage",
    "ProgressCallback",
    "Role",
    "Scope",
    "SnapshotProvider",
]
