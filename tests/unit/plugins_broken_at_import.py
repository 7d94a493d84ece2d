"""A plugin module whose manifest is broken at import time (the registry must report it, not crash)."""

from plugins.qcow2fs import Qcow2fsConfig, Qcow2fsDriver
from plugins.sdk import Locality, Plugin, PluginManifest, Role, Scope

plugin = Plugin(
    manifest=PluginManifest(
        name="broken-at-import",
        vendor="Nobody",
        version="1.0",
        roles=frozenset({Role.PRIMARY}),
        protocols=frozenset({"file"}),
        scopes=frozenset({Scope.CLUSTER}),
        hypervisors=frozenset({"kvm"}),
        locality=Locality.LOCAL,  # local storage cannot have the cluster scope
        config_model=Qcow2fsConfig,
    ),
    factory=Qcow2fsDriver,
)
