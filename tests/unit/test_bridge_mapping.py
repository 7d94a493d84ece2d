"""The bridge's mapping table and its inbox rule, without servers: which request becomes which command, which
strata event settles which operation, and when a request is a duplicate."""

import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from schemas import ErrorInfo, InvalidArgument
from schemas.cloudstack import ActionEvent, Status
from schemas.hosts import HostInfo
from schemas.migration import MigrateVolume, VolumeMigrated, VolumeMigrateFailed
from schemas.snapshot import VolumeSnapshotPair
from schemas.storage import CreateVolume, PoolState, PoolStateChanged
from schemas.storage_queries import PoolInfo, VolumeInfo
from services.bridge.mapping import MAPPING, ROWS, Defaults, outcome_events, settle
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
