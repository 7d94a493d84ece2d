"""`s3`: backup and image store on S3-compatible object storage, in the chunked format.

The entry point `strata.plugins: s3` resolves to `plugin`; its driver is a `ChunkedDriver` on an `S3BlobStore`
(aiobotocore). Tested against a real SeaweedFS.
"""

from plugins.chunked.driver import fault_points
from plugins.s3.config import S3Config
from plugins.s3.driver import open_driver
from plugins.sdk.capabilities import Capability, Locality, Role, Scope
from plugins.sdk.manifest import PluginManifest
from plugins.sdk.plugin import Plugin

MANIFEST = PluginManifest(
    name="s3",
    vendor="strata",
    version="0.1.0",
    description="Backups, templates and ISOs as SHA-256 named objects on S3-compatible storage",
    roles=frozenset({Role.BACKUP, Role.IMAGE}),
    protocols=frozenset({"s3"}),
    scopes=frozenset({Scope.ZONE, Scope.REGION}),
    locality=Locality.SHARED,
    capabilities=frozenset({Capability.BACKUP_SNAPSHOT, Capability.INCREMENTAL_BACKUP}),
    config_model=S3Config,
)

plugin = Plugin(manifest=MANIFEST, factory=open_driver, fault_points=fault_points("s3"))

__all__ = ["MANIFEST", "S3Config", "plugin"]
