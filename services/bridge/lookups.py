"""What the bridge asks strata's services over the bus (request/reply): the facts CloudStack's events leave out
(a VM's volumes, its host, a VM snapshot's pairs) and strata's state to reconcile CloudStack's reports against."""

from typing import TypeVar
from uuid import UUID

from bus.errors import RequestTimedOut, Unroutable
from bus.facade import Bus
from schemas import Envelope, Event, Message, Transient
from schemas.hosts import HostInfo, HostsListed, ListHosts
from schemas.image_queries import ImageInfo, ImagesListed, ListImages
from schemas.snapshot import VolumeSnapshotPair
from schemas.snapshot_queries import (
    ListSnapshotPolicies,
    ListSnapshots,
    SnapshotInfo,
    SnapshotPoliciesListed,
    SnapshotPolicyInfo,
    SnapshotsListed,
)
from schemas.storage_queries import ListPools, ListVolumes, PoolInfo, PoolsListed, VolumeInfo, VolumesListed

E = TypeVar("E", bound=Event)
QUERY_TIMEOUT = 15.0


class BusLookups:
    """Queries to the storage and snapshot services; a service that does not answer is a Transient error (the
    CloudStack message is taken again later)."""

    def __init__(self, bus: Bus, *, producer: str) -> None:
        self.bus = bus
        self.producer = producer

    async def _ask(self, query: Message, answer: type[E]) -> E:
        envelope = Envelope.wrap(query, producer=self.producer)
        try:
            reply = await self.bus.request(envelope, timeout=QUERY_TIMEOUT)
        except (Unroutable, RequestTimedOut):
            raise Transient(f"no answer to {query.message_type}: is its service running?") from None
        if not isinstance(reply.payload, answer):
            raise Transient(f"{query.message_type} was answered with {reply.type}")
        return reply.payload

    async def volumes_of_vm(self, vm_id: UUID) -> tuple[VolumeInfo, ...]:
        """The volumes strata knows of a VM."""
        return (await self._ask(ListVolumes(vm_id=vm_id), VolumesListed)).volumes

    async def hosts(self) -> tuple[HostInfo, ...]:
        """The registered hosts with their VMs."""
        return (await self._ask(ListHosts(), HostsListed)).hosts

    async def vm_snapshot_pairs(self, vm_snapshot_id: UUID) -> tuple[VolumeSnapshotPair, ...]:
        """The volume and snapshot pairs of a VM snapshot."""
        listed = await self._ask(ListSnapshots(vm_snapshot_id=vm_snapshot_id), SnapshotsListed)
        pairs = {info.volume_id: info.snapshot_id for info in listed.snapshots}
        return tuple(VolumeSnapshotPair(volume_id=v, snapshot_id=s) for v, s in sorted(pairs.items()))

    async def volume(self, volume_id: UUID) -> VolumeInfo | None:
        """A volume as strata holds it, Expunged included; None if strata never knew it."""
        listed = await self._ask(ListVolumes(volume_id=volume_id, include_expunged=True), VolumesListed)
        return listed.volumes[0] if listed.volumes else None

    async def pool(self, pool_id: UUID) -> PoolInfo | None:
        """A pool as strata holds it, Removed included; None if strata never knew it."""
        listed = await self._ask(ListPools(pool_id=pool_id, include_removed=True), PoolsListed)
        return listed.pools[0] if listed.pools else None

    async def snapshot(self, snapshot_id: UUID) -> SnapshotInfo | None:
        """A snapshot as strata holds it, Destroyed included; None if strata never knew it."""
        listed = await self._ask(ListSnapshots(snapshot_id=snapshot_id, include_destroyed=True), SnapshotsListed)
        return listed.snapshots[0] if listed.snapshots else None

    async def image(self, image_id: UUID) -> ImageInfo | None:
        """A template or ISO as strata holds it; None if it does not (never did, or deleted it)."""
        listed = await self._ask(ListImages(image_id=image_id), ImagesListed)
        return listed.images[0] if listed.images else None

    async def snapshot_policy(self, policy_id: UUID, volume_id: UUID | None) -> SnapshotPolicyInfo | None:
        """A snapshot policy as strata holds it (among the volume's, if known); None if it does not."""
        listed = await self._ask(ListSnapshotPolicies(volume_id=volume_id), SnapshotPoliciesListed)
        return next((policy for policy in listed.policies if policy.policy_id == policy_id), None)
