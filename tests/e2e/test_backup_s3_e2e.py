"""Backups on S3 (SeaweedFS, a real S3 server) with every daemon a process of its own: a full backup of a volume
with data, a change, an incremental, restores of both to new volumes compared with the volume at each point; the
agent SIGKILLed before the manifest of a backup finishes it after its restart; the S3 secret key appears in no log
line, journal row or event. The same story on a directory is tests/e2e/test_backup_e2e.py."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from uuid import UUID

import pytest
import pytest_asyncio

from schemas.backup import AddBackupRepository
from tests.e2e.cloud_support import add_pool, holds_mib, open_cloud, write_mib
from tests.e2e.revert_vm_support import Cloud
from tests.e2e.test_backup_e2e import back_up, back_up_with_the_agent_killed, consistent, new_volume, restore
from tests.seaweed import SeaweedS3, remove_bucket, shared_seaweed

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]
BEFORE_MANIFEST = "s3.backup.before_manifest"


@pytest.fixture(scope="module")
def seaweed() -> SeaweedS3:
    return shared_seaweed()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cloud(postgres_url: str, amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cloud]:
    async with open_cloud(postgres_url, amqp_url, tmp_path_factory.mktemp("backup-s3"), more=("backup",)) as opened:
        await add_pool(opened, opened.pool_id, opened.pool_dir)
        yield opened


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def repository(cloud: Cloud, seaweed: SeaweedS3) -> AsyncIterator[UUID]:
    bucket = f"e2e-{uuid.uuid4().hex[:12]}"
    repository_id = uuid.uuid4()
    config = {
        "endpoint": seaweed.endpoint_url,
        "region": seaweed.region,
        "bucket": bucket,
        "access_key": seaweed.access_key,
        "secret_key": seaweed.secret_key,
        "create_bucket": True,
        "chunk_size_kib": 64,
    }
    await cloud.publish(
        AddBackupRepository(
            repository_id=repository_id, name="e2e-s3", plugin="s3", config=config, zone_id=cloud.zone_id
        )
    )
    await cloud.wait(
        lambda: cloud.value("SELECT count(*) FROM backup.repositories WHERE repository_id = $1", repository_id),
        "the S3 repository",
    )
    yield repository_id
    remove_bucket(seaweed, bucket)


async def test_backups_and_restores_of_a_changing_volume_on_s3(
    cloud: Cloud, repository: UUID, seaweed: SeaweedS3
) -> None:
    volume_id, path = await new_volume(cloud)
    for mib in range(4):
        await write_mib(path, 0x21 + mib, 1, offset_mib=mib)
    full, ended = await back_up(cloud, volume_id, repository)
    assert ended == "COMPLETED"
    await write_mib(path, 0x77, 1, offset_mib=9)
    incremental, ended = await back_up(cloud, volume_id, repository)
    assert ended == "COMPLETED"
    assert await cloud.value("SELECT kind FROM backup.backups WHERE backup_id = $1", incremental) == "incremental"

    first, second = await restore(cloud, full), await restore(cloud, incremental)
    for mib in range(4):
        assert await holds_mib(first, 0x21 + mib, 1, offset_mib=mib)
        assert await holds_mib(second, 0x21 + mib, 1, offset_mib=mib)
    assert await holds_mib(first, 0x00, 1, offset_mib=9)
    assert await holds_mib(second, 0x77, 1, offset_mib=9)
    await consistent(cloud)
    cloud.assert_alive()
    secret = seaweed.secret_key
    assert not await cloud.value("SELECT count(*) FROM bus.journal WHERE payload::text LIKE $1", f"%{secret}%")
    for name, daemon in cloud.daemons.items():
        log = await asyncio.to_thread(daemon.log_path.read_text, errors="replace")
        assert secret not in log, f"the S3 secret key is in {name}'s log"


async def test_the_agent_killed_before_an_s3_manifest_finishes_the_backup_after_a_restart(
    cloud: Cloud, repository: UUID
) -> None:
    volume_id, path = await new_volume(cloud)
    await write_mib(path, 0x42, 2)
    backup_id = await back_up_with_the_agent_killed(cloud, volume_id, repository, BEFORE_MANIFEST)
    assert await holds_mib(await restore(cloud, backup_id), 0x42, 2)
    await consistent(cloud)
