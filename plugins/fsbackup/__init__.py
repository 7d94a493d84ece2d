"""`fsbackup`: backup, secondary and image store on a directory or an NFS mount, in the chunked format.

The entry point `strata.plugins: fsbackup` resolves to `plugin`; its driver is a `ChunkedDriver` on a
`DirectoryBlobStore` (atomic writes: temporary file, fsync, rename).
"""

from plugins.chunked.driver import fault_points
from plugins.fsbackup.config import FsBackupConfig
from plugins.fsbackup.driver import open_driver
from plugins.sdk.capabilities import Capability, Locality, Role, Scope
from plugins.sdk.manifest import PluginManifest
from plugins.sdk.plugin import Plugin

MANIFEST = PluginManifest(
    name="fsbackup",
    vendor="strata",
    version="0.1.0",
    description="Backups, templates and ISOs as SHA-256 named chunks on a directory or NFS mount",
    roles=frozenset({Role.BACKUP, Role.IMAGE}),
    protocols=frozenset({"file", "nfs"}),
    scopes=frozenset({Scope.HOST, Scope.CLUSTER, Scope.ZONE}),
    locality=Locality.SHARED,
    capabilities=frozenset({Capability.BACKUP_SNAPSHOT, Capability.INCREMENTAL_BACKUP}),
    config_model=FsBackupConfig,
)

plugin = Plugin(manifest=MANIFEST, factory=open_driver, fault_points=fault_points("fsbackup"))

__all__ = ["MANIFEST", "FsBackupConfig", "plugin"]
