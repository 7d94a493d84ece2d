"""The life cycle of each role as a list of steps: one operation each, tracked before it runs, checked after.

The same steps serve every test of the suite: run once (the life cycle), each mutating one twice (idempotency),
or with a fault point armed (a crashed step is called again and must reconcile).
"""

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from plugins.conformance.harness import Kit
from plugins.sdk import Capability
from plugins.sdk.types import ImageKind, PoolState, SnapshotKind, TemplateMode, VolumeFormat

MIB = 1024 * 1024
SOURCE_BYTES = 4 * MIB


@dataclass(frozen=True)
class Step:
    """One call of the life cycle."""

    name: str
    call: Callable[[], Awaitable[object]]
    check: Callable[[object], None] = lambda result: None
    mutating: bool = True
    track: Callable[[], None] = lambda: None


def comparable(result: object) -> object:
    """What must be equal between a call and its repetition (space use may move: it is left out)."""
    if isinstance(result, BaseModel):
        return comparable(result.model_dump(mode="json"))
    if isinstance(result, dict):
        return {key: comparable(value) for key, value in result.items() if key != "allocated_bytes"}
    if isinstance(result, list | tuple):
        return [comparable(value) for value in result]
    return result


def write_source(directory: Path, name: str = "source.raw") -> Path:
    """A raw image with data and holes: random first MiB, zeros, a random half MiB near the end."""
    data = bytearray(SOURCE_BYTES)
    data[:MIB] = os.urandom(MIB)
    data[3 * MIB : 3 * MIB + MIB // 2] = os.urandom(MIB // 2)
    path = directory / name
    path.write_bytes(bytes(data))
    return path


def change_source(source: Path, target: Path) -> Path:
    """A copy of `source` with about 5% of it rewritten (what an incremental backup must pick up)."""
    data = bytearray(source.read_bytes())
    data[2 * MIB : 2 * MIB + SOURCE_BYTES // 20] = os.urandom(SOURCE_BYTES // 20)
    target.write_bytes(bytes(data))
    return target


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _same_bytes(path: Path, expected: Path) -> Callable[[object], None]:
    def check(_: object) -> None:
        _expect(path.read_bytes() == expected.read_bytes(), f"{path.name} differs from {expected.name}")

    return check


def pool_steps(kit: Kit) -> list[Step]:
    """Add the pool and move it through its states (the primary role's first steps)."""
    pool_id = kit.id("pool")

    def track() -> None:
        kit.created.pool = pool_id

    def state(expected: PoolState) -> Callable[[object], None]:
        return lambda pool: _expect(getattr(pool, "state", None) is expected, f"the pool should be {expected}")

    primary = kit.primary
    return [
        Step("add_pool", lambda: primary.add_pool(pool_id), state(PoolState.ENABLED), track=track),
        Step("get_pool", primary.get_pool, state(PoolState.ENABLED), mutating=False),
        Step("disable", primary.disable, state(PoolState.DISABLED)),
        Step("enable", primary.enable, state(PoolState.ENABLED)),
        Step("enter_maintenance", primary.enter_maintenance, state(PoolState.MAINTENANCE)),
        Step("cancel_maintenance", primary.cancel_maintenance, state(PoolState.ENABLED)),
    ]


def volume_steps(kit: Kit, source: Path) -> list[Step]:
    """Volumes: create, copy in and out, clone, template, resize, list, stats, delete."""
    primary = kit.primary
    empty, copied, cloned, templated = kit.id("vol"), kit.id("vol"), kit.id("vol"), kit.id("vol")

    def track(volume_id: str) -> Callable[[], None]:
        return lambda: kit.created.volumes.append(volume_id)

    def size_is(expected: int) -> Callable[[object], None]:
        return lambda volume: _expect(getattr(volume, "size_bytes", None) == expected, f"size should be {expected}")

    steps = [
        Step(
            "create_volume",
            lambda: primary.create_volume(empty, SOURCE_BYTES),
            size_is(SOURCE_BYTES),
            track=track(empty),
        ),
        Step("get_volume", lambda: primary.get_volume(empty), size_is(SOURCE_BYTES), mutating=False),
    ]
    if kit.claims(Capability.COPY):
        copied_out = kit.scratch / "copied-out.raw"
        steps += [
            Step(
                "copy_in",
                lambda: primary.copy_in(copied, source, source_format=VolumeFormat.RAW),
                size_is(SOURCE_BYTES),
                track=track(copied),
            ),
            Step("copy_out", lambda: primary.copy_out(copied, copied_out), _same_bytes(copied_out, source)),
        ]
    if kit.claims(Capability.CLONE):
        base = copied if kit.claims(Capability.COPY) else empty
        cloned_out = kit.scratch / "cloned-out.raw"
        steps.append(
            Step("clone_volume", lambda: primary.clone_volume(cloned, base), size_is(SOURCE_BYTES), track=track(cloned))
        )
        if kit.claims(Capability.COPY):
            steps.append(
                Step("copy_out clone", lambda: primary.copy_out(cloned, cloned_out), _same_bytes(cloned_out, source))
            )
    if kit.claims(Capability.TEMPLATE):
        steps.append(
            Step(
                "create_volume from template",
                lambda: primary.create_volume(
                    templated, SOURCE_BYTES, template=source, template_mode=TemplateMode.COPY
                ),
                size_is(SOURCE_BYTES),
                track=track(templated),
            )
        )
    if kit.claims(Capability.LINKED_CLONE) and kit.claims(Capability.COPY):
        linked, linked_out = kit.id("vol"), kit.scratch / "linked-out.raw"
        steps += [
            Step(
                "create_volume linked to a template",
                lambda: primary.create_volume(
                    linked, SOURCE_BYTES, template=source, template_mode=TemplateMode.BACKING
                ),
                size_is(SOURCE_BYTES),
                track=track(linked),
            ),
            Step(
                "copy_out linked clone", lambda: primary.copy_out(linked, linked_out), _same_bytes(linked_out, source)
            ),
        ]
    if kit.claims(Capability.RESIZE):
        steps.append(
            Step("resize_volume", lambda: primary.resize_volume(empty, 2 * SOURCE_BYTES), size_is(2 * SOURCE_BYTES))
        )

    def listed(volumes: object) -> None:
        ids = {getattr(volume, "volume_id", None) for volume in volumes} if isinstance(volumes, list) else set()
        _expect(empty in ids, "list_volumes should list the volumes created")

    def sane(stats: object) -> None:
        capacity, used = getattr(stats, "capacity_bytes", -1), getattr(stats, "used_bytes", -1)
        _expect(0 <= used <= capacity, "stats: used must be between 0 and the capacity")

    steps += [
        Step("list_volumes", primary.list_volumes, listed, mutating=False),
        Step("stats", primary.stats, sane, mutating=False),
    ]
    return steps


def snapshot_steps(kit: Kit, source: Path) -> list[Step]:
    """Snapshots of one volume: take two, list, revert to the first, describe, delete both, coalesce."""
    primary, snapshots = kit.primary, kit.snapshots
    volume_id, first, second = kit.id("vol"), kit.id("snap"), kit.id("snap")
    kind = SnapshotKind.DELTA if kit.claims(Capability.DELTA_SNAPSHOT) else SnapshotKind.FULL
    out = kit.scratch / "reverted-out.raw"
    copy = kit.claims(Capability.COPY)

    def make() -> Awaitable[object]:
        if copy:
            return primary.copy_in(volume_id, source, source_format=VolumeFormat.RAW)
        return primary.create_volume(volume_id, SOURCE_BYTES)

    def track(snapshot_id: str) -> Callable[[], None]:
        return lambda: kit.created.snapshots.append(snapshot_id)

    steps = [
        Step("volume to snapshot", make, track=lambda: kit.created.volumes.append(volume_id)),
        Step("create_snapshot", lambda: snapshots.create_snapshot(first, volume_id, kind), track=track(first)),
    ]
    if kit.claims(Capability.RESIZE):
        steps.append(Step("resize after snapshot", lambda: primary.resize_volume(volume_id, 2 * SOURCE_BYTES)))
    steps += [
        Step("create second snapshot", lambda: snapshots.create_snapshot(second, volume_id, kind), track=track(second)),
        Step(
            "list_snapshots",
            lambda: snapshots.list_snapshots(volume_id),
            lambda listed: _expect(
                [s.snapshot_id for s in listed] == [first, second] if isinstance(listed, list) else False,
                "list_snapshots should list both, oldest first",
            ),
            mutating=False,
        ),
    ]
    if kit.claims(Capability.REVERT_TO_SNAPSHOT):
        steps.append(
            Step(
                "revert_to_snapshot",
                lambda: snapshots.revert_to_snapshot(volume_id, first),
                lambda volume: _expect(
                    getattr(volume, "size_bytes", None) == SOURCE_BYTES,
                    "revert should bring the size at the snapshot back",
                ),
            )
        )
        if copy:
            steps.append(Step("copy_out reverted", lambda: primary.copy_out(volume_id, out), _same_bytes(out, source)))
    if kind is SnapshotKind.DELTA:
        steps.append(Step("describe_chain", lambda: snapshots.describe_chain(volume_id), mutating=False))
    # The newer snapshot first: the older one's layer is then left with a single child, which coalesce merges.
    steps += [
        Step("delete_snapshot", lambda: snapshots.delete_snapshot(second)),
        Step("delete older snapshot", lambda: snapshots.delete_snapshot(first)),
    ]
    if kit.claims(Capability.COALESCE):
        steps.append(Step("coalesce", lambda: snapshots.coalesce(volume_id)))
    if copy and kit.claims(Capability.REVERT_TO_SNAPSHOT):
        steps.append(Step("copy_out after deletes", lambda: primary.copy_out(volume_id, out), _same_bytes(out, source)))
    return steps


def teardown_steps(kit: Kit) -> list[Step]:
    """Delete every volume the steps created, then remove the pool."""
    primary = kit.primary

    async def delete_all() -> None:
        for volume_id in kit.created.volumes:
            await primary.delete_volume(volume_id)

    async def listed_none() -> object:
        return await primary.list_volumes()

    pool = kit.created

    async def remove() -> None:
        assert pool.pool is not None
        await primary.remove_pool(pool.pool)

    return [
        Step("delete_volume (all)", delete_all),
        Step(
            "list_volumes after delete",
            listed_none,
            lambda volumes: _expect(volumes == [], "no volume should be left"),
            mutating=False,
        ),
        Step("remove_pool", remove),
    ]


def backup_steps(kit: Kit, source: Path) -> list[Step]:
    """A full backup, an incremental one after a 5% change, restores, listing, deletes."""
    target = kit.backups
    volume_id, full, incremental = kit.id("vol"), kit.id("backup"), kit.id("backup")
    restored = kit.scratch / "restored.raw"
    changed = change_source(source, kit.scratch / "changed.raw")

    def track(backup_id: str) -> Callable[[], None]:
        return lambda: kit.created.backups.append(backup_id)

    def ids(expected: list[str]) -> Callable[[object], None]:
        return lambda listed: _expect(
            isinstance(listed, list) and [b.backup_id for b in listed] == expected, f"list_backups should be {expected}"
        )

    steps = [
        Step("backup (full)", lambda: target.backup(full, volume_id, source), track=track(full)),
        Step("restore full", lambda: target.restore(full, restored), _same_bytes(restored, source)),
    ]
    expected = [full]
    if kit.claims(Capability.INCREMENTAL_BACKUP):
        expected.append(incremental)
        steps += [
            Step(
                "backup (incremental)",
                lambda: target.backup(incremental, volume_id, changed, parent_id=full),
                lambda ref: _expect(getattr(ref, "parent_id", None) == full, "the incremental names its parent"),
                track=track(incremental),
            ),
            Step("restore incremental", lambda: target.restore(incremental, restored), _same_bytes(restored, changed)),
        ]
    steps.append(Step("list_backups", lambda: target.list_backups(volume_id), ids(expected), mutating=False))
    steps.append(Step("delete_backup full", lambda: target.delete_backup(full)))
    if kit.claims(Capability.INCREMENTAL_BACKUP):
        steps += [
            Step(
                "restore incremental after parent deleted",
                lambda: target.restore(incremental, restored),
                _same_bytes(restored, changed),
            ),
            Step("delete_backup incremental", lambda: target.delete_backup(incremental)),
        ]
    steps.append(Step("list_backups after delete", lambda: target.list_backups(volume_id), ids([]), mutating=False))
    return steps


def image_steps(kit: Kit, source: Path) -> list[Step]:
    """Put a template, read it back, list it, delete it."""
    store = kit.images
    image_id = kit.id("image")
    out = kit.scratch / "image-out.raw"

    def listed(images: object) -> None:
        _expect(isinstance(images, list) and image_id in [i.image_id for i in images], "list_images should list it")

    return [
        Step(
            "put_image",
            lambda: store.put_image(image_id, ImageKind.TEMPLATE, source),
            lambda ref: _expect(getattr(ref, "size_bytes", None) == SOURCE_BYTES, "the image size is its bytes"),
            track=lambda: kit.created.images.append(image_id),
        ),
        Step("get_image", lambda: store.get_image(image_id, out), _same_bytes(out, source)),
        Step("list_images", store.list_images, listed, mutating=False),
        Step("delete_image", lambda: store.delete_image(image_id)),
    ]
