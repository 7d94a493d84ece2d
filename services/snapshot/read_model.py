"""What the snapshot service knows of pools, volumes and VMs, kept from the storage service's and agents' events.

Each handler is one write that reads nothing first (`deferred_writes`): its whole transaction is one round trip.
It is a copy for deciding (is the volume Ready? which agent reaches its pool? is its VM stopped?); the storage
service and the hypervisor stay the truth. Events may arrive in any order and more than once: a volume's events
carry its version (`entity_version`), and the copy keeps only what is newer than what it holds
(`repository.apply_volume`), so that it ends equal to the owner's state whatever the order. Each volume event says
the state it leaves the volume in. A service that starts late catches up by asking the owner (`catch_up`).
"""

from bus.ports import UnitOfWork, deferred_writes
from schemas import Envelope
from schemas.migration import VolumePoolSwitched
from schemas.storage import (
    PoolAdded,
    PoolStateChanged,
    VolumeCreated,
    VolumeDeleted,
    VolumeResized,
    VolumeState,
    VolumeStateChanged,
)
from schemas.vm import PowerState, VmDescribed, VmStarted, VmStopped
from services.snapshot import repository as repo
from services.snapshot.deps import SnapshotDeps


@deferred_writes
async def on_pool_added(event: PoolAdded, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps) -> None:
    """Remember the pool's plugin and where its agents are."""
    pool = repo.PoolRow(event.pool_id, event.plugin, event.scope, event.cluster_id, event.host)
    repo.upsert_pool(uow, pool)


@deferred_writes
async def on_pool_state_changed(
    event: PoolStateChanged, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps
) -> None:
    """A pool entering maintenance takes no new snapshot operation until it is Up again."""
    repo.apply_pool_state(uow, event.pool_id, event.new_state, envelope.occurred_at)


@deferred_writes
async def on_volume_created(event: VolumeCreated, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps) -> None:
    """A Ready volume to snapshot, on its pool."""
    report = repo.VolumeReport(
        event.volume_id,
        VolumeState.READY,
        event.entity_version,
        envelope.occurred_at,
        size_bytes=event.size_bytes,
        pool_id=event.pool_id,
        vm_id=event.vm_id,
    )
    repo.apply_volume(uow, report)


@deferred_writes
async def on_volume_state_changed(
    event: VolumeStateChanged, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps
) -> None:
    """Track the volume's state (Ready, Snapshotting, RevertSnapshotting, ...)."""
    repo.apply_volume(
        uow, repo.VolumeReport(event.volume_id, event.new_state, event.entity_version, envelope.occurred_at)
    )


@deferred_writes
async def on_volume_resized(event: VolumeResized, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps) -> None:
    """Snapshots record the size the volume had when they were taken; a resized volume is Ready."""
    report = repo.VolumeReport(
        event.volume_id, VolumeState.READY, event.entity_version, envelope.occurred_at, size_bytes=event.new_size_bytes
    )
    repo.apply_volume(uow, report)


@deferred_writes
async def on_volume_deleted(event: VolumeDeleted, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps) -> None:
    """An expunged volume takes no more snapshots."""
    report = repo.VolumeReport(event.volume_id, VolumeState.EXPUNGED, event.entity_version, envelope.occurred_at)
    repo.apply_volume(uow, report)


@deferred_writes
async def on_vm_stopped(event: VmStopped, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps) -> None:
    """A stopped VM's volumes may be reverted directly."""
    repo.record_power(uow, event.vm_id, event.host, PowerState.STOPPED.value, envelope.occurred_at)


@deferred_writes
async def on_vm_started(event: VmStarted, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps) -> None:
    """A running VM's volumes are not reverted under it."""
    repo.record_power(uow, event.vm_id, event.host, PowerState.RUNNING.value, envelope.occurred_at)


@deferred_writes
async def on_vm_described(event: VmDescribed, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps) -> None:
    """Whatever an agent saw last."""
    repo.record_power(uow, event.vm_id, event.host, event.power_state.value, envelope.occurred_at)


@deferred_writes
async def on_volume_pool_switched(
    event: VolumePoolSwitched, envelope: Envelope, uow: UnitOfWork, deps: SnapshotDeps
) -> None:
    """A migrated volume's next snapshots go to its new pool's agent (it moved with none: a migration refuses)."""
    uow.defer("UPDATE snapshot.volumes SET pool_id = $2 WHERE volume_id = $1", event.volume_id, event.pool_id)
