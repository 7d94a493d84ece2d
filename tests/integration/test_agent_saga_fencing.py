"""A participant refuses a command without a fencing token on a resource a saga holds (sagas.participant), here the
agent on RabbitMQ and PostgreSQL with libvirt's test driver: the saga's own token still works, and once the saga
lets go, a command without a token does too."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest

from sagas.postgres_migrate import migrate_sagas
from sagas.postgres_store import PostgresSagaStore
from schemas.vm import StartVm, StopVm, VmStarted, VmStopFailed, VmStopped
from tests.integration.storage_stack import Stack, define_vm, fail_without_libvirt, vm_is_active

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str) -> AsyncIterator[Stack]:
    fail_without_libvirt()
    opened = await Stack.open(database_url, amqp_url, namespace)
    async with opened.pool.acquire() as connection:
        await migrate_sagas(connection)
    await opened.start_agent("kvm1.lab", "c1")
    yield opened
    await opened.close()


async def test_a_command_without_a_token_on_a_resource_a_saga_holds_is_refused(stack: Stack, tmp_path: Path) -> None:
    vm_id = define_vm(tmp_path / "disk.qcow2", running=True)
    store, saga_id = PostgresSagaStore(stack.pool), uuid4()
    async with store.session() as session:  # a saga holds the VM (as a STUCK one would, for as long as it takes)
        taken = await session.acquire_locks(saga_id, [f"vm:{vm_id}"], lease=3600, now=datetime.now(UTC), queue=False)
    assert taken.token is not None

    refused = await stack.answer(await stack.send(StopVm(vm_id=vm_id, host="kvm1.lab")))
    assert isinstance(refused.payload, VmStopFailed)
    assert refused.payload.error.code == "ABORTED"
    assert f"vm:{vm_id} is held by saga {saga_id}" in refused.payload.error.message
    assert vm_is_active(vm_id)  # nothing changed

    by_the_saga = await stack.answer(
        await stack.send(StopVm(vm_id=vm_id, host="kvm1.lab"), saga_id=saga_id, step=1, fencing_token=taken.token)
    )
    assert isinstance(by_the_saga.payload, VmStopped), by_the_saga.payload
    assert not vm_is_active(vm_id)

    async with store.session() as session:
        await session.release_locks(saga_id)
    started = await stack.answer(await stack.send(StartVm(vm_id=vm_id, host="kvm1.lab")))
    assert isinstance(started.payload, VmStarted), started.payload
    assert vm_is_active(vm_id)
