"""The mapping rows that read what CloudStack writes into an event's description (a resize's size, a template's
source volume, a copy's destination zone) and the template and backup rows, on the real RabbitMQ and PostgreSQL
with the real services. Messages are built by CloudStack's rules (tests.cloudstack_wire, random key order); each
request arrives as CloudStack sends it (Created, Scheduled, Started) and twice, and becomes one command."""

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import pytest

from schemas.backup import AddBackupRepository, CreateBackup
from tests import cloudstack_wire as wire
from tests.integration.bridge_stack import BridgeCloud, bridge_cloud, count, created_volume

pytestmark = pytest.mark.integration
TEMPLATE = "VirtualMachineTemplate"


@pytest.fixture
async def cloud(amqp_url: str, namespace: str, database_url: str, tmp_path: Path) -> AsyncIterator[BridgeCloud]:
    async with bridge_cloud(amqp_url, namespace, database_url, tmp_path) as running:
        yield running


async def publish_twice(cloud: BridgeCloud, messages: list[wire.Message]) -> None:
    """Each message delivered twice, in CloudStack's order."""
    for message in messages:
        await cloud.cloudstack.publish(message)
        await cloud.cloudstack.publish(message)


async def test_a_resize_takes_the_size_cloudstack_wrote_and_runs_once(cloud: BridgeCloud) -> None:
    pool = await cloud.add_pool("resize")
    volume = await created_volume(cloud, pool)
    entities = {"Volume": volume}
    await publish_twice(
        cloud,
        [
            wire.action_event(
                "VOLUME.RESIZE", status, entity="Volume", entity_uuid=volume, entities=entities, description=text
            )
            for status, text in (
                ("Scheduled", f"Volume Id: {volume} to size 1 GB"),
                ("Started", f"resizing volume. Volume Id: {volume} to size 1 GB"),
            )
        ],
    )
    answer = await cloud.cloudstack.answer(volume, "VOLUME.RESIZE")
    assert answer.fields["description"] == "Successfully completed resizing volume", answer.fields
    assert answer.fields["Volume"] == str(volume)
    assert await cloud.value("SELECT size_bytes FROM storage.volumes WHERE volume_id = $1", volume) == 1 << 30
    await cloud.wait(lambda: count(cloud, "duplicate", 4), "the other three requests recorded as duplicates")
    assert await cloud.commands("volume.resize") == 1

    # A resize to another disk offering: CloudStack's events carry no size, so it is recorded and nothing is sent.
    offering = wire.action_event(
        "VOLUME.RESIZE", "Scheduled", entity="Volume", entity_uuid=volume, entities=entities, description=""
    )
    await cloud.cloudstack.publish(offering)

    async def recorded() -> bool:
        detail = await cloud.value(
            "SELECT detail FROM bridge.events WHERE event = 'VOLUME.RESIZE' AND outcome = 'recorded'"
        )
        return detail is not None and "no new size" in detail

    await cloud.wait(recorded, "the resize without a size recorded")
    assert await cloud.commands("volume.resize") == 1


def template_event(template: UUID, event: str, status: str, description: str) -> wire.Message:
    return wire.action_event(
        event, status, entity=TEMPLATE, entity_uuid=template, entities={TEMPLATE: template}, description=description
    )


async def test_a_template_made_from_a_volume_copied_to_another_zone_and_deleted(cloud: BridgeCloud) -> None:
    pool = await cloud.add_pool("templates")
    await cloud.add_store("store-a")
    other_zone = uuid.uuid4()
    await cloud.add_store("store-b", other_zone)
    volume = await created_volume(cloud, pool)
    template = uuid.uuid4()
    # createTemplate: Created and Scheduled name the template only; the Started names the volume it is made from.
    await publish_twice(
        cloud,
        [
            template_event(template, "TEMPLATE.CREATE", "Created", "Successfully created entity for creating template"),
            template_event(template, "TEMPLATE.CREATE", "Scheduled", "creating template: t1"),
            template_event(
                template,
                "TEMPLATE.CREATE",
                "Started",
                f"creating template. Template Id: {template} from volume Id: {volume}",
            ),
        ],
    )
    made = await cloud.cloudstack.answer(template, "TEMPLATE.CREATE", timeout=120)
    assert made.fields["description"] == "Successfully completed creating template", made.fields
    assert made.resource == TEMPLATE
    assert await cloud.commands("image.create_from_volume") == 1

    copy = f"copying template. Copying Template: {template} from zone: {cloud.zone_id} to zones: {other_zone}"
    await publish_twice(
        cloud,
        [
            template_event(template, "TEMPLATE.COPY", "Scheduled", copy.split(". ", 1)[1]),
            template_event(template, "TEMPLATE.COPY", "Started", copy),
        ],
    )
    copied = await cloud.cloudstack.answer(template, "TEMPLATE.COPY", timeout=120)
    assert copied.fields["description"] == "Successfully completed copying template", copied.fields
    assert await cloud.commands("image.copy") == 1

    await publish_twice(
        cloud,
        [
            template_event(template, "TEMPLATE.DELETE", status, "deleting template")
            for status in ("Scheduled", "Started")
        ],
    )
    deleted = await cloud.cloudstack.answer(template, "TEMPLATE.DELETE", timeout=120)
    assert deleted.fields["description"] == "Successfully completed deleting template", deleted.fields
    assert await cloud.commands("image.delete") == 1
    assert await cloud.value("SELECT count(*) FROM image.images WHERE image_id = $1", template) == 0


@pytest.fixture
async def backup_cloud(amqp_url: str, namespace: str, database_url: str, tmp_path: Path) -> AsyncIterator[BridgeCloud]:
    async with bridge_cloud(amqp_url, namespace, database_url, tmp_path, more=("backup",)) as running:
        yield running


async def test_a_backup_restored_in_place_and_deleted_through_the_bridge(backup_cloud: BridgeCloud) -> None:
    cloud = backup_cloud
    pool = await cloud.add_pool("backups")
    volume = await created_volume(cloud, pool)
    repository, backup = uuid.uuid4(), uuid.uuid4()
    path = cloud.base / "repository"
    path.mkdir()
    config = {"path": str(path), "compression": "none"}
    await cloud.send(
        AddBackupRepository(
            repository_id=repository, name="repo", plugin="fsbackup", config=config, zone_id=cloud.zone_id
        )
    )
    await cloud.wait(
        lambda: cloud.value("SELECT count(*) FROM backup.repositories WHERE repository_id = $1", repository),
        "the repository",
    )
    await cloud.send(CreateBackup(backup_id=backup, volume_id=volume, repository_id=repository))

    async def backed_up() -> bool:
        state = await cloud.value("SELECT state FROM backup.backups WHERE backup_id = $1", backup)
        return bool(state == "BackedUp")

    await cloud.wait(backed_up, "the backup", timeout=120)

    entities = {"Backup": backup, "Volume": volume}
    await publish_twice(
        cloud,
        [
            wire.action_event("BACKUP.RESTORE", status, entity="Backup", entity_uuid=backup, entities=entities)
            for status in ("Scheduled", "Started")
        ],
    )
    restored = await cloud.cloudstack.answer(backup, "BACKUP.RESTORE", timeout=120)
    assert restored.fields["description"] == "Successfully completed restoring backup", restored.fields
    assert restored.fields["Volume"] == str(volume)
    assert await cloud.commands("backup.restore") == 1

    await publish_twice(
        cloud,
        [
            wire.action_event("BACKUP.DELETE", status, entity="Backup", entity_uuid=backup, entities={"Backup": backup})
            for status in ("Scheduled", "Started")
        ],
    )
    deleted = await cloud.cloudstack.answer(backup, "BACKUP.DELETE", timeout=120)
    assert deleted.fields["description"] == "Successfully completed deleting backup", deleted.fields
    assert await cloud.commands("backup.delete") == 1
    assert await cloud.value("SELECT state FROM backup.backups WHERE backup_id = $1", backup) == "Removed"


async def test_reports_of_the_new_rows_are_reconciled_against_strata(cloud: BridgeCloud) -> None:
    pool = await cloud.add_pool("reports")
    volume = await created_volume(cloud, pool)  # 16 MiB
    unknown_template, unknown_policy = uuid.uuid4(), uuid.uuid4()
    reports = [
        # CloudStack resized a volume strata holds at another size: a disagreement, nothing resized.
        wire.action_event(
            "VOLUME.RESIZE",
            "Completed",
            entity="Volume",
            entity_uuid=volume,
            entities={"Volume": volume},
            description=f"Successfully completed resizing volume. Volume Id: {volume} to size 2 GB",
        ),
        # CloudStack made a template and a policy strata never heard of: disagreements.
        template_event(unknown_template, "TEMPLATE.CREATE", "Completed", "Successfully completed creating template"),
        wire.action_event(
            "SNAPSHOTPOLICY.CREATE",
            "Completed",
            entity="SnapshotPolicy",
            entity_uuid=unknown_policy,
            entities={"SnapshotPolicy": unknown_policy, "Volume": volume},
            description="Successfully completed creating snapshot policy",
        ),
        # ... and deleted a template strata does not hold either: they agree.
        template_event(unknown_template, "TEMPLATE.DELETE", "Completed", "Successfully completed deleting template"),
    ]
    for report in reports:
        await cloud.cloudstack.publish(report)
    await cloud.wait(lambda: count(cloud, "disagreed", 3), "three disagreements")
    await cloud.wait(lambda: count(cloud, "reconciled", 1), "one agreement")
    detail = await cloud.value(
        "SELECT detail FROM bridge.events WHERE event = 'VOLUME.RESIZE' AND outcome = 'disagreed'"
    )
    assert f"CloudStack: volume of {2 << 30} bytes" in detail, detail
    assert f"{16 << 20} bytes" in detail, detail
    assert await cloud.value("SELECT size_bytes FROM storage.volumes WHERE volume_id = $1", volume) == 16 << 20
    assert await cloud.commands("cloudstack.report.disagreed") == 3
    for command in ("volume.resize", "image.delete", "snapshot_policy.create"):
        assert await cloud.commands(command) == 0, command
