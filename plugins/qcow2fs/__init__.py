"""qcow2fs: primary storage with snapshots on qcow2 files under a directory (host scope) or shared mount (cluster
scope), driven by qemu-img. The entry point `plugins.qcow2fs:plugin` resolves to `plugin` below.

The operations work on images no guest has open (qemu-img would refuse a locked image with `Transient`); a running
guest's snapshots and merges are the hypervisor's live operations. Operations on one volume are serialised in this
process; across hosts the orchestrator's per-volume locks serialise them.
"""

from plugins.qcow2fs.coalesce import FAULT_POINTS as COALESCE_FAULT_POINTS
from plugins.qcow2fs.config import Qcow2fsConfig
from plugins.qcow2fs.driver import Qcow2fsDriver
from plugins.sdk import Capability, CapacityThresholds, Locality, Plugin, PluginManifest, Role, Scope

MANIFEST = PluginManifest(
    name="qcow2fs",
    vendor="strata",
    version="0.1.0",
    description="qcow2 files on a local directory or a shared mount, with delta snapshot chains (qemu-img)",
    roles=frozenset({Role.PRIMARY}),
    protocols=frozenset({"file", "nfs"}),
    scopes=frozenset({Scope.HOST, Scope.CLUSTER}),
    hypervisors=frozenset({"kvm"}),
    locality=Locality.SHARED,
    capabilities=frozenset(
        {
            Capability.SNAPSHOT,
            Capability.DELTA_SNAPSHOT,
            Capability.REVERT_TO_SNAPSHOT,
            Capability.COALESCE,
            Capability.CLONE,
            Capability.RESIZE,
            Capability.TEMPLATE,
            Capability.COPY,
            Capability.LINKED_CLONE,
            Capability.THIN_PROVISIONING,
        }
    ),
    config_model=Qcow2fsConfig,
    thresholds=CapacityThresholds(warn_used_fraction=0.75, stop_allocation_fraction=0.85, overprovisioning_factor=2.0),
)

plugin = Plugin(
    manifest=MANIFEST,
    factory=Qcow2fsDriver,
    fault_points=(
        "qcow2fs.volume.before_publish",
        "qcow2fs.snapshot.after_freeze",
        "qcow2fs.snapshot_delete.after_forget",
        "qcow2fs.revert.before_switch",
        *COALESCE_FAULT_POINTS,
    ),
)

__all__ = ["MANIFEST", "Qcow2fsConfig", "Qcow2fsDriver", "plugin"]
