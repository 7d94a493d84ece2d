"""strata-rawfile: primary storage on raw sparse files. The entry point `strata_rawfile:plugin` names `plugin`."""

from plugins.sdk import Capability, Locality, Plugin, PluginManifest, Role, Scope
from strata_rawfile.config import RawfileConfig
from strata_rawfile.driver import RawfileDriver

MANIFEST = PluginManifest(
    name="rawfile",
    vendor="Example Storage Inc.",
    version="0.1.0",
    description="Raw sparse files in a local directory (example third-party plugin, no snapshots)",
    roles=frozenset({Role.PRIMARY}),
    protocols=frozenset({"file"}),
    scopes=frozenset({Scope.HOST}),
    hypervisors=frozenset({"kvm"}),
    locality=Locality.LOCAL,
    capabilities=frozenset(
        {Capability.CLONE, Capability.RESIZE, Capability.COPY, Capability.TEMPLATE, Capability.THIN_PROVISIONING}
    ),
    config_model=RawfileConfig,
)

plugin = Plugin(manifest=MANIFEST, factory=RawfileDriver, fault_points=("rawfile.volume.before_publish",))

__all__ = ["MANIFEST", "RawfileConfig", "RawfileDriver", "plugin"]
