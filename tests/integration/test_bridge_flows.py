"""The bridge on the real RabbitMQ and PostgreSQL with the real services: CloudStack's events, built as its
RabbitMQEventBus builds them (tests.cloudstack_wire), drive strata, and strata's answers on CloudStack's exchange
read back by the same rules."""

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bus.ports import WireMessage
from services.bridge.link import ROUTING_KEY_HEADER
from tests import cloudstack_wire as wire
from tests.integration.bridge_stack import TEST_DOMAIN, BridgeCloud, bridge_cloud, count, created_volume, volume_create
from tests.integration.cli_support import strata, strata_json

pytestmark = pytest.mark.integration


@pytest.fixture
async def cloud(amqp_url: str, namespace: str, database_url: str, tmp_path: Path) -> AsyncIterator[BridgeCloud]:
    async with bridge_cloud(amqp_url, namespace, database_url, tmp_path) as running:
        yield running


async def test_a_volume_create_runs_once_and_is_answered_in_cloudstacks_format(cloud: BridgeCloud) -> None:
    pool = await cloud.add_pool("fast")
    volume, user = uuid.uuid4(), uuid.uuid4()
    scheduled = volume_create(volume, pool, "Scheduled", user=user, java_class="com.cloud.storage.Volume")
    await cloud.cloudstack.publish(scheduled)
    await cloud.cloudstack.publish(scheduled)  # the same message twice
    await cloud.cloudstack.publish(volume_create(volume, pool, "Started", user=user))
    answer = await cloud.cloudstack.answer(volume, "VOLUME.CREATE")
    assert (answer.source, answer.category, answer.event_type, answer.resource) == (
        "strata",
        "ActionEvent",
        "VOLUME-CREATE",
        "Volume",
    )
    assert answer.fields["status"] == "Completed"
    assert answer.fields["description"] == "Successfully completed creating volume"
    assert answer.fields["Volume"] == str(volume)
    assert answer.fields["StoragePool"] == str(pool)
    assert answer.fields["user"] == str(user)
    assert not answer.failed
    state = await cloud.value("SELECT state FROM storage.volumes WHERE volume_id = $1", volume)
    assert state == "Ready"
    await cloud.wait(lambda: count(cloud, "duplicate", 2), "two duplicates recorded")
    assert await cloud.commands("volume.create") == 1
    outcomes = await cloud.outcomes()
    assert outcomes == {"command_sent": 1, "duplicate": 2}

    # CloudStack's own Completed of the operation strata ran is kept with it, not reconciled as a foreign report.
    await cloud.cloudstack.publish(volume_create(volume, pool, "Completed", description="Successfully completed"))
    # The same transition before and after it happens: one record.
    for _ in range(2):
        await cloud.cloudstack.publish(
            wire.resource_state_event("Volume", volume, "Creating", "Ready", event="OperationSucceeded")
        )
    await cloud.wait(lambda: count(cloud, "duplicate", 3), "the post transition recorded as a duplicate")
    await cloud.wait(lambda: count(cloud, "recorded", 2), "the Completed and the transition recorded")
    assert await cloud.commands("volume.create") == 1
    assert len([a for a in cloud.cloudstack.answers if a.resource_uuid == str(volume)]) == 1

    # What an operator sees.
    listed = await strata_json(cloud.env, "bridge", "events", "--entity", str(volume))
    # (the bridge takes several messages at once, so their order in the list is the order they committed)
    assert sorted(row["outcome"] for row in listed) == ["command_sent"] + ["duplicate"] * 3 + ["recorded"] * 2
    (sent,) = [row for row in listed if row["outcome"] == "command_sent"]
    assert sent["event"] == "VOLUME.CREATE"
    assert sent["correlation_id"] is not None
    status = await strata_json(cloud.env, "bridge", "status")
    assert status["consumers"] == 1
    assert status["waiting"] == 0
    assert status["outcomes"] == {"command_sent": 1, "duplicate": 3, "recorded": 2}
    assert status["unsent_answers"] == 0
    code, out = await strata(cloud.env, "bridge", "events", "--entity", "not-a-uuid")
    assert code != 0
    assert "not a UUID" in out


async def test_reports_of_operations_strata_did_not_run_are_reconciled_never_applied(cloud: BridgeCloud) -> None:
    pool = await cloud.add_pool("reports")
    known = await created_volume(cloud, pool)
    unknown = uuid.uuid4()
    # CloudStack says it created a volume strata has never heard of: a disagreement, nothing created.
    await cloud.cloudstack.publish(volume_create(unknown, pool, "Completed", description="Successfully completed"))
    # CloudStack says it failed to delete a volume strata holds: they agree, and it is recorded as a failure.
    failed = wire.action_event(
        "VOLUME.DELETE",
        "Completed",
        entity="Volume",
        entity_uuid=known,
        entities={"Volume": known},
        description="Error while deleting volume: disk busy",
    )
    await cloud.cloudstack.publish(failed)
    await cloud.wait(lambda: count(cloud, "disagreed", 1), "the disagreement")
    await cloud.wait(lambda: count(cloud, "reconciled", 1), "the agreement")
    row = await cloud.db.fetchrow(
        "SELECT outcome, cloudstack_failed FROM bridge.events WHERE entity_uuid = $1 AND event = 'VOLUME.DELETE'",
        known,
    )
    assert row is not None
    assert row["cloudstack_failed"] is True
    assert row["outcome"] == "reconciled"
    assert await cloud.value("SELECT state FROM storage.volumes WHERE volume_id = $1", known) == "Ready"
    assert await cloud.value("SELECT count(*) FROM storage.volumes WHERE volume_id = $1", unknown) == 0
    assert await cloud.commands("cloudstack.report.disagreed") == 1
    assert await cloud.commands("volume.delete") == 0


async def test_hostile_bodies_are_dead_lettered_and_change_nothing(cloud: BridgeCloud) -> None:
    pool = await cloud.add_pool("hostile")
    key = wire.routing_key("management-server", "ActionEvent", "VOLUME.CREATE", "Volume", str(uuid.uuid4()))
    hostile = [
        wire.Message(key, b"this is not JSON {"),
        wire.Message(
            key,
            wire.gson(
                {
                    "status": "Scheduled",
                    "event": "VOLUME.CREATE",
                    "entity": "Volume",
                    "entityuuid": "x; DROP TABLE storage.volumes",
                    "eventDateTime": wire.cloudstack_date(),
                }
            ),
        ),
        volume_create(uuid.uuid4(), pool, "Scheduled", description="x" * (1024 * 1024)),
    ]
    for message in hostile:
        await cloud.cloudstack.publish(message)
    await cloud.cloudstack.publish(
        wire.action_event("VM.START", "Scheduled", entity="VirtualMachine", entity_uuid=uuid.uuid4())
    )
    await cloud.wait(lambda: count(cloud, "dead_lettered", 3), "three dead letters recorded")
    await cloud.wait(lambda: count(cloud, "ignored", 1), "the unknown type ignored")
    dead = await cloud.transport.list_dead()
    reasons = sorted(letter.reason for letter in dead)
    assert len(dead) == 3
    assert any("not JSON" in reason for reason in reasons), reasons
    assert any("field entityuuid: not a uuid" in reason for reason in reasons), reasons
    assert any("byte limit" in reason for reason in reasons), reasons
    assert {letter.origin_queue for letter in dead} == {f"{cloud.namespace}.bridge.cloudstack"}
    assert await cloud.commands("volume.create") == 0
    assert await cloud.value("SELECT count(*) FROM storage.volumes") == 0
    # ... and the bridge goes on.
    await created_volume(cloud, pool)
    # A dead letter re-driven (an operator fixed what failed) comes back with its CloudStack routing key.
    await cloud.transport.purge_dead()
    volume = uuid.uuid4()
    parked = volume_create(volume, pool, "Started")
    headers = {"x-death-reason": "parked by the test", "x-origin-queue": f"{cloud.namespace}.bridge.cloudstack"}
    letter = WireMessage(
        parked.body, str(uuid.uuid4()), "cloudstack.event", headers | {ROUTING_KEY_HEADER: parked.routing_key}
    )
    await cloud.transport.publish("dead", "", letter)
    assert await cloud.transport.redrive_dead() == 1
    answer = await cloud.cloudstack.answer(volume, "VOLUME.CREATE")
    assert not answer.failed, answer.fields


async def test_a_vm_snapshot_and_its_revert_through_the_bridge(cloud: BridgeCloud) -> None:
    pool = await cloud.add_pool("vm")
    volume = await created_volume(cloud, pool, vm=TEST_DOMAIN)
    vm_snapshot = uuid.uuid4()
    entities = {"VirtualMachine": TEST_DOMAIN, "VMSnapshot": vm_snapshot}
    for status in ("Scheduled", "Started"):
        await cloud.cloudstack.publish(
            wire.action_event(
                "VMSNAPSHOT.CREATE", status, entity="VMSnapshot", entity_uuid=vm_snapshot, entities=entities
            )
        )
    created = await cloud.cloudstack.answer(vm_snapshot, "VMSNAPSHOT.CREATE", timeout=120)
    assert created.fields["description"] == "Successfully completed creating vm snapshot", created.fields
    assert created.fields["VirtualMachine"] == str(TEST_DOMAIN)
    snapshots = await cloud.value("SELECT count(*) FROM snapshot.snapshots WHERE vm_snapshot_id = $1", vm_snapshot)
    assert snapshots == 1
    for status in ("Scheduled", "Started"):
        await cloud.cloudstack.publish(
            wire.action_event(
                "VMSNAPSHOT.REVERTTO", status, entity="VMSnapshot", entity_uuid=vm_snapshot, entities=entities
            )
        )
    reverted = await cloud.cloudstack.answer(vm_snapshot, "VMSNAPSHOT.REVERTTO", timeout=120)
    assert reverted.fields["description"] == "Successfully completed reverting to vm snapshot", reverted.fields
    assert await cloud.commands("vm.snapshot.create") == 1
    assert await cloud.commands("vm.snapshot.revert") == 1
    assert await cloud.value("SELECT state FROM storage.volumes WHERE volume_id = $1", volume) == "Ready"


async def test_pool_maintenance_and_a_migration_through_the_bridge(cloud: BridgeCloud) -> None:
    source, target = await cloud.add_pool("source"), await cloud.add_pool("target")
    await cloud.add_store("staging")
    volume = await created_volume(cloud, source)
    migrate = wire.action_event(
        "VOLUME.MIGRATE",
        "Scheduled",
        entity="Volume",
        entity_uuid=volume,
        entities={"Volume": volume, "StoragePool": target},
    )
    await cloud.cloudstack.publish(migrate)
    migrated = await cloud.cloudstack.answer(volume, "VOLUME.MIGRATE", timeout=120)
    assert migrated.fields["description"] == "Successfully completed migrating volume", migrated.fields
    assert migrated.fields["StoragePool"] == str(target)
    assert await cloud.value("SELECT pool_id FROM storage.volumes WHERE volume_id = $1", volume) == target

    for event in ("MAINT.PREPARE.PS", "MAINT.CANCEL.PS"):
        await cloud.cloudstack.publish(
            wire.action_event(
                event, "Started", entity="StoragePool", entity_uuid=source, entities={"StoragePool": source}
            )
        )
        answer = await cloud.cloudstack.answer(source, event)
        assert not answer.failed, answer.fields
        if event == "MAINT.PREPARE.PS":
            assert await cloud.value("SELECT state FROM storage.pools WHERE pool_id = $1", source) == "Maintenance"
    assert await cloud.value("SELECT state FROM storage.pools WHERE pool_id = $1", source) == "Up"
    assert await cloud.commands("pool.maintain") == 1
    assert await cloud.commands("volume.migrate") == 1


async def test_a_volume_snapshot_taken_reverted_and_deleted_through_the_bridge(cloud: BridgeCloud) -> None:
    pool = await cloud.add_pool("snapshots")
    volume = await created_volume(cloud, pool)
    snapshot = uuid.uuid4()
    entities = {"Snapshot": snapshot, "Volume": volume}
    for event, doing in (
        ("SNAPSHOT.CREATE", "taking snapshot"),
        ("SNAPSHOT.REVERT", "reverting snapshot"),
        ("SNAPSHOT.DELETE", "deleting snapshot"),
    ):
        for status in ("Scheduled", "Started"):
            await cloud.cloudstack.publish(
                wire.action_event(event, status, entity="Snapshot", entity_uuid=snapshot, entities=entities)
            )
        answer = await cloud.cloudstack.answer(snapshot, event)
        assert answer.fields["description"] == f"Successfully completed {doing}", answer.fields
        assert answer.fields["Volume"] == str(volume)
    state = await cloud.value("SELECT state FROM snapshot.snapshots WHERE snapshot_id = $1", snapshot)
    assert state == "Destroyed"
    for command in ("snapshot.create", "snapshot.revert", "snapshot.delete"):
        assert await cloud.commands(command) == 1, command


async def test_pre_and_post_state_events_and_the_action_ask_for_one_deletion(cloud: BridgeCloud) -> None:
    pool = await cloud.add_pool("states")
    volume = await created_volume(cloud, pool)
    destroy = wire.resource_state_event("Volume", volume, "Ready", "Destroy", event="DestroyRequested")
    await cloud.cloudstack.publish(destroy)  # before the transition
    await cloud.cloudstack.publish(
        wire.action_event(
            "VOLUME.DELETE", "Scheduled", entity="Volume", entity_uuid=volume, entities={"Volume": volume}
        )
    )
    await cloud.cloudstack.publish(destroy)  # after it
    answer = await cloud.cloudstack.answer(volume, "VOLUME.DELETE")
    assert answer.fields["description"] == "Successfully completed deleting volume", answer.fields
    # (one more: the Started of the volume's creation)
    await cloud.wait(lambda: count(cloud, "duplicate", 3), "the other two recorded as duplicates")
    assert await cloud.commands("volume.delete") == 1
    state = await cloud.value("SELECT state FROM storage.volumes WHERE volume_id = $1", volume)
    assert state in {"Destroy", "Expunging", "Expunged"}
