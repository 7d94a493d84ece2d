"""CloudStack's reports of operations strata did not run, checked against strata's state.

CloudStack may act on storage by itself (an operator on its console, a job it ran before the bridge existed). Its
Completed event is then a claim about the world: "volume X exists", "pool P is in maintenance". Each claim is compared
with what strata holds; a disagreement is published as `cloudstack.report.disagreed` and counted, never written over
strata's state: an operator decides which side is right.
"""

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from schemas.cloudstack import ActionEvent
from schemas.image_queries import ImageInfo
from schemas.snapshot import SnapshotState
from schemas.snapshot_queries import SnapshotInfo, SnapshotPolicyInfo
from schemas.storage import PoolState, VolumeState
from schemas.storage_queries import PoolInfo, VolumeInfo

_GONE_VOLUME = {VolumeState.DESTROY, VolumeState.EXPUNGING, VolumeState.EXPUNGED}
_GONE_SNAPSHOT = {SnapshotState.DESTROYING, SnapshotState.DESTROYED, SnapshotState.ERROR}
_RESIZE_SIZE = re.compile(r"\bto size (\d{1,9}) ?GB?\b")


def resize_bytes(description: str) -> int | None:
    """The new size `ResizeVolumeCmd` writes into its events ("... to size 20 GB": CloudStack's GB are GiB)."""
    found = _RESIZE_SIZE.search(description)
    return None if found is None else int(found.group(1)) << 30


class StateProbe(Protocol):
    """strata's state of one entity (the bridge asks the owning service)."""

    async def volume(self, volume_id: UUID) -> VolumeInfo | None:
        """The volume, Expunged included; None if strata never knew it."""

    async def pool(self, pool_id: UUID) -> PoolInfo | None:
        """The pool, Removed included; None if strata never knew it."""

    async def snapshot(self, snapshot_id: UUID) -> SnapshotInfo | None:
        """The snapshot, Destroyed included; None if strata never knew it."""

    async def image(self, image_id: UUID) -> ImageInfo | None:
        """The template or ISO; None if strata does not hold it (never did, or deleted it)."""

    async def snapshot_policy(self, policy_id: UUID, volume_id: UUID | None) -> SnapshotPolicyInfo | None:
        """The snapshot policy (looked for among the volume's, if known); None if strata does not hold it."""


@dataclass(frozen=True)
class Verdict:
    """What CloudStack's report implies and what strata holds; `agrees` says whether they match."""

    agrees: bool
    cloudstack_says: str
    strata_says: str


Check = Callable[[ActionEvent, UUID, StateProbe], Awaitable[Verdict]]


def _volume_state(info: VolumeInfo | None) -> str:
    return "no such volume" if info is None else f"volume {info.state.value} on pool {info.pool_id}"


def _volume_check(expect: str) -> Check:
    async def check(report: ActionEvent, volume_id: UUID, probe: StateProbe) -> Verdict:
        info = await probe.volume(volume_id)
        exists = info is not None and info.state not in _GONE_VOLUME
        if report.failed:  # CloudStack says nothing changed: strata should not hold the effect either
            expect_exists = expect != "created"
            return Verdict(exists == expect_exists, f"{expect} failed", _volume_state(info))
        if expect == "created":
            return Verdict(exists, "volume exists", _volume_state(info))
        if expect == "deleted":
            return Verdict(not exists, "volume deleted", _volume_state(info))
        target = report.entity_id("StoragePool")
        on_target = info is not None and exists and (target is None or info.pool_id == target)
        return Verdict(on_target, f"volume on pool {target}", _volume_state(info))

    return check


def _snapshot_check(expect: str) -> Check:
    async def check(report: ActionEvent, snapshot_id: UUID, probe: StateProbe) -> Verdict:
        info = await probe.snapshot(snapshot_id)
        exists = info is not None and info.state not in _GONE_SNAPSHOT
        held = "no such snapshot" if info is None else f"snapshot {info.state.value}"
        if report.failed:
            return Verdict(exists == (expect != "created"), f"snapshot {expect} failed", held)
        wanted = expect == "created"
        return Verdict(exists == wanted, "snapshot exists" if wanted else "snapshot deleted", held)

    return check


def _pool_check(*states: PoolState) -> Check:
    async def check(report: ActionEvent, pool_id: UUID, probe: StateProbe) -> Verdict:
        info = await probe.pool(pool_id)
        held = "no such pool" if info is None else f"pool {info.state.value}"
        wanted = " or ".join(state.value for state in states)
        if report.failed:  # CloudStack's failed pool operation leaves the pool as it was: nothing to compare
            return Verdict(True, f"pool not {wanted}", held)
        removed = info is None and PoolState.REMOVED in states
        return Verdict(removed or (info is not None and info.state in states), f"pool {wanted}", held)

    return check


async def _resize_check(report: ActionEvent, volume_id: UUID, probe: StateProbe) -> Verdict:
    info = await probe.volume(volume_id)
    held = _volume_state(info) + ("" if info is None else f", {info.size_bytes} bytes")
    wanted = resize_bytes(report.description)
    if report.failed or wanted is None:  # nothing strata could compare: the old size, or the offering's
        return Verdict(info is not None, "resize failed" if report.failed else "volume resized", held)
    return Verdict(info is not None and info.size_bytes == wanted, f"volume of {wanted} bytes", held)


def _image_check(expect_held: bool) -> Check:
    async def check(report: ActionEvent, image_id: UUID, probe: StateProbe) -> Verdict:
        info = await probe.image(image_id)
        held = info is not None and not info.deleting
        strata = "no such template" if info is None else f"template {info.name}"
        if info is not None and info.deleting:
            strata += " being deleted"
        wanted = expect_held != report.failed  # a failed create leaves none; a failed delete leaves it
        return Verdict(held == wanted, "template exists" if wanted else "no such template", strata)

    return check


def _policy_check(expect_held: bool) -> Check:
    async def check(report: ActionEvent, policy_id: UUID, probe: StateProbe) -> Verdict:
        info = await probe.snapshot_policy(policy_id, report.entity_id("Volume"))
        strata = "no such policy" if info is None else f"{info.interval_type.value} policy of volume {info.volume_id}"
        wanted = expect_held != report.failed
        return Verdict((info is not None) == wanted, "policy exists" if wanted else "no such policy", strata)

    return check


CHECKS: dict[str, Check] = {
    "VOLUME.CREATE": _volume_check("created"),
    "VOLUME.DELETE": _volume_check("deleted"),
    "VOLUME.MIGRATE": _volume_check("migrated"),
    "VOLUME.RESIZE": _resize_check,
    "TEMPLATE.CREATE": _image_check(True),
    "TEMPLATE.DELETE": _image_check(False),
    "SNAPSHOTPOLICY.CREATE": _policy_check(True),
    "SNAPSHOTPOLICY.DELETE": _policy_check(False),
    "SNAPSHOT.CREATE": _snapshot_check("created"),
    "SNAPSHOT.DELETE": _snapshot_check("deleted"),
    "MAINT.PREPARE.PS": _pool_check(PoolState.MAINTENANCE, PoolState.PREPARE_FOR_MAINTENANCE),
    "MAINT.CANCEL.PS": _pool_check(PoolState.UP),
    "ENABLE.PS": _pool_check(PoolState.UP),
    "DISABLE.PS": _pool_check(PoolState.DISABLED),
    "DELETE.PS": _pool_check(PoolState.REMOVED),
}
"""CloudStack event type -> how its report is checked; a type not listed is recorded without a check (a template's
copy: strata's copies name their store, not its zone; backups: no query of them on the bus; a policy's update)."""


async def reconcile(report: ActionEvent, entity_uuid: UUID, probe: StateProbe) -> Verdict | None:
    """Compare a report with strata's state; None if strata has nothing to compare it with."""
    check = CHECKS.get(report.event)
    return None if check is None else await check(report, entity_uuid, probe)
