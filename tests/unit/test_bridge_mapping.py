"""The bridge's mapping table and its inbox rule, without servers: which request becomes which command, which
strata event settles which operation, and when a request is a duplicate."""

import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from schemas import ErrorInfo, InvalidArgument
from schemas.cloudstack import ActionEvent, Status
from schemas.hosts import HostInfo
from schemas.image import CopyImage, CreateImageFromVolume
from schemas.image_queries import ImageInfo
from schemas.migration import MigrateVolume, VolumeMigrated, VolumeMigrateFailed
from schemas.snapshot import SnapshotKind, SnapshotState, VolumeSnapshotPair
from schemas.snapshot_queries import SnapshotInfo, SnapshotPolicyInfo
from schemas.storage import CreateVolume, PoolScope, PoolState, PoolStateChanged, ResizeVolume, VolumeState
from schemas.storage_queries import PoolInfo, VolumeInfo
from services.bridge.builders import Defaults, NotCarried
from services.bridge.mapping import MAPPING, ROWS, outcome_events, settle
from services.bridge.records import Operation, is_duplicate

pytestmark = pytest.mark.unit
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
DEFAULTS = Defaults(volume_size_bytes=1 << 20, zone_id=None)


class NoLookups:
    """Rows that need nothing from strata's services must not ask."""

    async def volumes_of_vm(self, vm_id: UUID) -> tuple[VolumeInfo, ...]:
        raise AssertionError("asked for a VM's volumes")

    async def hosts(self) -> tuple[HostInfo, ...]:
        raise AssertionError("asked for the hosts")

    async def vm_snapshot_pairs(self, vm_snapshot_id: UUID) -> tuple[VolumeSnapshotPair, ...]:
        raise AssertionError("asked for a VM snapshot")

    async def pool(self, pool_id: UUID) -> PoolInfo | None:
        return None

    async def volume(self, volume_id: UUID) -> VolumeInfo | None:
        raise AssertionError("asked for a volume")

    async def snapshot(self, snapshot_id: UUID) -> SnapshotInfo | None:
        raise AssertionError("asked for a snapshot")

    async def image(self, image_id: UUID) -> ImageInfo | None:
        raise AssertionError("asked for an image")

    async def snapshot_policy(self, policy_id: UUID, volume_id: UUID | None) -> SnapshotPolicyInfo | None:
        raise AssertionError("asked for a policy")


def request(event: str, **entities: UUID) -> ActionEvent:
    entity, entity_uuid = next(iter(entities.items()))
    return ActionEvent(
        status=Status.STARTED,
        event=event,
        entity=entity,
        entity_uuid=entity_uuid,
        entities=entities,
        occurred_at=NOW,
    )


def test_one_row_per_event_type_and_every_outcome_has_its_entity_field() -> None:
    assert len(MAPPING) == len(ROWS)
    for row in ROWS:
        for model in row.outcomes:
            assert row.entity_field in model.model_fields, (row.event, model.__name__)
        assert (row.command is None) == (not row.outcomes), row.event
        assert (row.command is None) == bool(row.why_recorded), row.event
    assert VolumeMigrated in outcome_events()


async def test_a_migration_request_becomes_migrate_volume_with_cloudstacks_uuids() -> None:
    volume, pool = uuid.uuid4(), uuid.uuid4()
    row = MAPPING["VOLUME.MIGRATE"]
    assert row.command is not None
    command = await row.command(request("VOLUME.MIGRATE", Volume=volume, StoragePool=pool), NoLookups(), DEFAULTS)
    assert command == MigrateVolume(volume_id=volume, pool_id=pool)
    assert row.targets == ("StoragePool",)


async def test_a_request_missing_an_entity_is_refused_by_name() -> None:
    row = MAPPING["VOLUME.MIGRATE"]
    assert row.command is not None
    with pytest.raises(InvalidArgument) as raised:
        await row.command(request("VOLUME.MIGRATE", Volume=uuid.uuid4()), NoLookups(), DEFAULTS)
    assert raised.value.field == "StoragePool"


async def test_a_volume_create_takes_the_zone_from_the_event_or_the_setting() -> None:
    row = MAPPING["VOLUME.CREATE"]
    assert row.command is not None
    volume, zone = uuid.uuid4(), uuid.uuid4()
    with pytest.raises(InvalidArgument):
        await row.command(request("VOLUME.CREATE", Volume=volume), NoLookups(), DEFAULTS)
    command = await row.command(request("VOLUME.CREATE", Volume=volume, DataCenter=zone), NoLookups(), DEFAULTS)
    assert isinstance(command, CreateVolume)
    assert (command.volume_id, command.zone_id, command.size_bytes) == (volume, zone, 1 << 20)


def test_outcomes_settle_operations_of_their_entity() -> None:
    volume, pool = uuid.uuid4(), uuid.uuid4()
    failed = VolumeMigrateFailed(
        volume_id=volume, pool_id=pool, error=ErrorInfo(code="X", error_class="FailedPrecondition", message="full")
    )
    assert settle(MAPPING["VOLUME.MIGRATE"], failed) == (volume, False, "full")
    assert settle(MAPPING["VOLUME.CREATE"], failed) is None
    maintain = MAPPING["MAINT.PREPARE.PS"]
    assert maintain.command is not None
    passing = PoolStateChanged(pool_id=pool, old_state=PoolState.UP, new_state=PoolState.PREPARE_FOR_MAINTENANCE)
    done = PoolStateChanged(pool_id=pool, old_state=PoolState.PREPARE_FOR_MAINTENANCE, new_state=PoolState.MAINTENANCE)
    broken = PoolStateChanged(
        pool_id=pool, old_state=PoolState.PREPARE_FOR_MAINTENANCE, new_state=PoolState.ERROR_IN_MAINTENANCE
    )
    assert settle(maintain, passing) is None
    assert settle(maintain, done) == (pool, True, None)
    assert settle(maintain, broken) == (pool, False, "the pool ended ErrorInMaintenance")


def test_a_request_is_a_duplicate_while_its_operation_is_open_or_settled_after_it() -> None:
    def operation(outcome: str | None, settled_at: datetime | None) -> Operation:
        return Operation("k#1", 1, outcome, settled_at, uuid.uuid4(), "volume.create", None)

    assert not is_duplicate(None, NOW)
    assert is_duplicate(operation(None, None), NOW)
    assert is_duplicate(operation("succeeded", NOW + timedelta(seconds=5)), NOW)  # a late redelivery
    assert not is_duplicate(operation("succeeded", NOW - timedelta(seconds=5)), NOW)  # asked for again


def described(event: str, description: str, **entities: UUID) -> ActionEvent:
    return request(event, **entities).model_copy(update={"description": description})


async def test_a_resize_takes_its_size_from_cloudstacks_description_or_is_not_sent() -> None:
    row, volume = MAPPING["VOLUME.RESIZE"], uuid.uuid4()
    assert row.command is not None
    scheduled = described("VOLUME.RESIZE", f"Volume Id: {volume} to size 20 GB", Volume=volume)
    resize = await row.command(scheduled, NoLookups(), DEFAULTS)
    assert resize == ResizeVolume(volume_id=volume, new_size_bytes=20 << 30)
    started = described("VOLUME.RESIZE", f"resizing volume. Volume Id: {volume} to size 3 GB", Volume=volume)
    assert await row.command(started, NoLookups(), DEFAULTS) == ResizeVolume(volume_id=volume, new_size_bytes=3 << 30)
    with pytest.raises(NotCarried, match="no new size"):  # a new disk offering: the size is not on the bus
        await row.command(described("VOLUME.RESIZE", f"Volume Id: {volume}", Volume=volume), NoLookups(), DEFAULTS)


async def test_a_template_copy_goes_to_the_one_zone_its_description_names() -> None:
    row, template, zone, other = MAPPING["TEMPLATE.COPY"], uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert row.command is not None
    text = f"copying template. Copying Template: {template} from zone: {other} to zones: {zone}"
    copy = await row.command(described("TEMPLATE.COPY", text, VirtualMachineTemplate=template), NoLookups(), DEFAULTS)
    assert copy == CopyImage(image_id=template, zone_id=zone)
    text = f"Copying Template: {template} to zones: {zone}, {other}"
    several = described("TEMPLATE.COPY", text, VirtualMachineTemplate=template)
    with pytest.raises(NotCarried, match="2 zones"):
        await row.command(several, NoLookups(), DEFAULTS)


class Known(NoLookups):
    """A volume on a host-scoped pool, and a snapshot of it."""

    def __init__(self, volume: VolumeInfo, pool: PoolInfo, snapshot: UUID) -> None:
        self.known_volume, self.known_pool, self.snapshot_id = volume, pool, snapshot

    async def pool(self, pool_id: UUID) -> PoolInfo | None:
        return self.known_pool if pool_id == self.known_pool.pool_id else None

    async def volume(self, volume_id: UUID) -> VolumeInfo | None:
        return self.known_volume if volume_id == self.known_volume.volume_id else None

    async def snapshot(self, snapshot_id: UUID) -> SnapshotInfo | None:
        assert snapshot_id == self.snapshot_id
        return SnapshotInfo(
            snapshot_id=snapshot_id,
            volume_id=self.known_volume.volume_id,
            name="s",
            state=SnapshotState.BACKED_UP,
            kind=SnapshotKind.FULL,
            size_bytes=1,
            physical_size_bytes=1,
            created_at=NOW,
        )


async def test_a_template_is_made_from_the_volume_or_snapshot_the_started_names() -> None:
    row, template, snapshot = MAPPING["TEMPLATE.CREATE"], uuid.uuid4(), uuid.uuid4()
    assert row.command is not None
    pool = PoolInfo(
        pool_id=uuid.uuid4(),
        name="p",
        plugin="qcow2fs",
        state=PoolState.UP,
        scope=PoolScope.HOST,
        zone_id=uuid.uuid4(),
        host="h1",
        cluster_id="c1",
        capacity_bytes=1,
        used_bytes=0,
        allocated_bytes=0,
        volumes=0,
    )
    volume = VolumeInfo(
        volume_id=uuid.uuid4(),
        name="v",
        state=VolumeState.READY,
        size_bytes=1 << 20,
        zone_id=uuid.uuid4(),
        pool_id=pool.pool_id,
    )
    lookups = Known(volume, pool, snapshot)
    scheduled = described("TEMPLATE.CREATE", "creating template: t1", VirtualMachineTemplate=template)
    with pytest.raises(NotCarried):  # the Scheduled carries the name only
        await row.command(scheduled, lookups, DEFAULTS)
    text = f"creating template. Template Id: {template} from snapshot Id: {snapshot}"
    made = await row.command(described("TEMPLATE.CREATE", text, VirtualMachineTemplate=template), lookups, DEFAULTS)
    assert isinstance(made, CreateImageFromVolume)
    assert (made.image_id, made.volume_id, made.snapshot_id, made.pool_id, made.zone_id, made.host) == (
        template,
        volume.volume_id,
        snapshot,
        pool.pool_id,
        volume.zone_id,
        "h1",
    )
